import type { Budget } from './schema.js'

export interface WindowSpan {
  /** Epoch ms of the window's first instant (0 for `total`). */
  start: number
  /** Epoch ms of the next window's first instant (Infinity for `total`). */
  end: number
  /** Stable label for keys: the start date in UTC, or `total`. */
  label: string
}

const DAY = 86_400_000

/**
 * The calendar window (UTC) that contains `now`: days start at 00:00, weeks on Monday, months on the 1st.
 *
 * @example
 * windowAt('day', Date.UTC(2025, 0, 15, 13)) // { start: Date.UTC(2025, 0, 15), end: Date.UTC(2025, 0, 16), label: '2025-01-15' }
 */
export function windowAt(window: Budget['window'], now: number): WindowSpan {
  // every request asks for the same few windows: reuse the last span while `now` is inside it
  const last = lastSpan.get(window)
  if (last && last.start <= now && now < last.end) return last
  const span = computeWindow(window, now)
  lastSpan.set(window, span)
  return span
}

const lastSpan = new Map<Budget['window'], Readonly<WindowSpan>>()

function computeWindow(window: Budget['window'], now: number): WindowSpan {
  const d = new Date(now)
  const y = d.getUTCFullYear()
  const m = d.getUTCMonth()
  const today = Date.UTC(y, m, d.getUTCDate())
  let start: number
  let end: number
  switch (window) {
    case 'total':
      return Object.freeze({ start: 0, end: Infinity, label: 'total' })
    case 'day':
      start = today
      end = today + DAY
      break
    case 'week':
      start = today - ((d.getUTCDay() + 6) % 7) * DAY
      end = start + 7 * DAY
      break
    case 'month':
      start = Date.UTC(y, m, 1)
      end = Date.UTC(y, m + 1, 1)
      break
  }
  return Object.freeze({ start, end, label: new Date(start).toISOString().slice(0, 10) })
}
