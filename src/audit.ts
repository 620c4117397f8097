/**
 * A bounded, in-process log of recent events (guardrail actions, routing decisions) for the admin API and
 * dashboard. Holds only what is safe to show: never raw prompt text or keys.
 *
 * @example
 * const log = createEventLog<GuardrailEvent>(1000)
 * log.push(event); log.recent(50)
 */
export function createEventLog<T>(max: number) {
  const items: T[] = []
  return {
    push(item: T) {
      items.push(item)
      if (items.length > max) items.splice(0, items.length - max)
    },
    recent(n = max): T[] {
      return items.slice(-n)
    }
  }
}

export type EventLog<T> = ReturnType<typeof createEventLog<T>>
