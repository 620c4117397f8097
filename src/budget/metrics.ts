import type { Counter, Registry } from 'prom-client'
import { counter } from '../metrics/deferred.js'

const byRegistry = new WeakMap<Registry, BudgetMetrics>()

/**
 * Budget and rate-limit metrics, created once per registry (steps are rebuilt on every config reload).
 * Labels stay low-cardinality: team, scope kind, threshold — never key or session ids.
 *
 * @example
 * const m = budgetMetrics(gateway.metrics.registry)
 * m.rejections.inc({ team: 'research', scope: 'team', window: 'month' })
 */
export function budgetMetrics(registry: Registry): BudgetMetrics {
  let m = byRegistry.get(registry)
  if (m) return m
  const registers = [registry]
  m = {
    rejections: counter({ name: 'sluice_budget_rejections_total', help: 'Requests refused by a budget.', labelNames: ['team', 'scope', 'window'] as const, registers }),
    downgrades: counter({ name: 'sluice_budget_downgrades_total', help: 'Requests moved to a cheaper model by a budget.', labelNames: ['team', 'from', 'to'] as const, registers }),
    shadowExceeded: counter({ name: 'sluice_budget_shadow_exceeded_total', help: 'Requests a shadow budget would have refused.', labelNames: ['team', 'scope', 'window'] as const, registers }),
    alerts: counter({ name: 'sluice_budget_alerts_total', help: 'Budget alert thresholds crossed.', labelNames: ['team', 'scope', 'window', 'threshold'] as const, registers }),
    alertFailures: counter({ name: 'sluice_budget_alert_webhook_failures_total', help: 'Budget alert webhooks that could not be delivered.', labelNames: ['team'] as const, registers }),
    expired: counter({ name: 'sluice_budget_reservations_expired_total', help: 'Reservations that outlived their TTL and were charged their worst case.', labelNames: ['team'] as const, registers }),
    storeErrors: counter({ name: 'sluice_budget_store_errors_total', help: 'Admission or settlement decisions taken while the store was unreachable.', labelNames: ['team', 'op', 'decision'] as const, registers }),
    rateLimited: counter({ name: 'sluice_ratelimit_rejections_total', help: 'Requests refused by a rate limit.', labelNames: ['team', 'scope', 'kind'] as const, registers })
  }
  byRegistry.set(registry, m)
  return m
}

export interface BudgetMetrics {
  rejections: Counter<'team' | 'scope' | 'window'>
  downgrades: Counter<'team' | 'from' | 'to'>
  shadowExceeded: Counter<'team' | 'scope' | 'window'>
  alerts: Counter<'team' | 'scope' | 'window' | 'threshold'>
  alertFailures: Counter<'team'>
  expired: Counter<'team'>
  storeErrors: Counter<'team' | 'op' | 'decision'>
  rateLimited: Counter<'team' | 'scope' | 'kind'>
}
