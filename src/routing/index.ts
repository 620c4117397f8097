import { dirname, resolve } from 'node:path'
import type { GatewayConfig } from '../config/load.js'
import { ConfigError } from '../config/load.js'
import type { TeamPolicy } from '../config/schema.js'
import type { RequestContext, Step } from '../context.js'
import { GatewayError, UpstreamError } from '../errors.js'
import type { TargetCaller } from '../providers/call.js'
import { createExecutor } from './execute.js'
import { routingPolicySchema, type RouteNode, type RoutingPolicy } from './schema.js'
import { scorerNamed } from './scorer.js'
import { createRoutingState, type RoutingState } from './state.js'
import type { Target } from './types.js'

export interface RouterDeps {
  /** The target a public model name maps to (config lookup). */
  resolveTarget: (name: string) => Target | undefined
  callTarget: TargetCaller
  /** Breakers and load-balancer state; pass one that outlives config reloads (`createRoutingState`). */
  state?: RoutingState
}

// A team without a routing section gets plain pass-through: no retries, no breaker (nothing it did not ask for).
const DEFAULT_POLICY: RoutingPolicy = routingPolicySchema.parse({ retry: { retries: 0 }, breaker: false })

/**
 * The plan-and-call step, last in the pipeline: turns the public model name into a strategy (the team
 * policy's `routing.routes`, or the configured model of that name) and runs it. Sets `x-sluice-route`
 * (the target that answered) and `x-sluice-attempts` (provider calls made, rejected tiers and failed
 * fallbacks included).
 *
 * @example
 * const route = createRouter({ resolveTarget, callTarget, state: createRoutingState({ metrics }) })
 */
export function createRouter(deps: RouterDeps): Step {
  const state = deps.state ?? createRoutingState()
  const executors = new WeakMap<RoutingPolicy, ReturnType<typeof createExecutor>>()
  const executorFor = (policy: RoutingPolicy) => {
    let ex = executors.get(policy)
    if (!ex) executors.set(policy, (ex = createExecutor({ resolveTarget: deps.resolveTarget, callTarget: deps.callTarget, state, policy })))
    return ex
  }

  return async (ctx: RequestContext) => {
    const policy = ctx.policy.routing ?? DEFAULT_POLICY
    const node: RouteNode | undefined = policy.routes[ctx.alias] ?? (deps.resolveTarget(ctx.alias) ? ctx.alias : undefined)
    if (node === undefined) throw new GatewayError(404, `The model "${ctx.alias}" does not exist or you do not have access to it.`, { code: 'model_not_found', param: 'model' })
    try {
      const answer = await executorFor(policy)(ctx, node)
      ctx.responseHeaders['x-sluice-route'] = answer.target
      return answer.result
    } finally {
      ctx.responseHeaders['x-sluice-attempts'] = String(ctx.attempts.length)
    }
  }
}

/**
 * The public model names a team's policy routes (shown in its /v1/models, accepted as `model`).
 *
 * @example
 * routeAliases(policy) // ['smart', 'cheap-first']
 */
export function routeAliases(policy: TeamPolicy | undefined): string[] {
  return Object.keys(policy?.routing?.routes ?? {})
}

/** Whether `alias` is a route of the team's policy. */
export function isRouteAlias(policy: TeamPolicy | undefined, alias: string): boolean {
  return Object.hasOwn(policy?.routing?.routes ?? {}, alias)
}

/**
 * Check every team's routing against the config: each target a route names is a configured chat model,
 * judges too, scorers are registered. Throws a ConfigError naming the policy file, the path and the fix.
 *
 * @example
 * validateRouting(config) // before building a runtime from it
 */
export function validateRouting(config: Pick<GatewayConfig, 'file' | 'teams' | 'models' | 'policies'>): void {
  const dir = dirname(config.file)
  for (const [team, policy] of Object.entries(config.policies)) {
    const routing = policy.routing
    if (!routing) continue
    const policyFile = config.teams[team]?.policy ? resolve(dir, config.teams[team]!.policy!) : config.file
    const fail = (path: string, problem: string, fix: string): never => {
      throw new ConfigError(`${policyFile}: at routing.${path}: ${problem}. Fix: ${fix}.`)
    }
    const known = Object.entries(config.models).filter(([, m]) => m.type === 'chat').map(([n]) => n)
    const checkTarget = (name: string, path: string) => {
      if (!config.models[name]) fail(path, `model "${name}" is not defined`, `use a name under models: (${known.join(', ') || 'none'})`)
      if (config.models[name]!.type !== 'chat') fail(path, `model "${name}" is an embedding model`, 'route to a chat model')
    }
    const walk = (node: RouteNode, path: string): void => {
      if (typeof node === 'string') return checkTarget(node, path)
      if ('single' in node) return checkTarget(node.single, `${path}.single`)
      if ('fallback' in node) return node.fallback.forEach((n, i) => walk(n, `${path}.fallback.${i}`))
      if ('loadbalance' in node) return node.loadbalance.forEach((m, i) => walk(m.route, `${path}.loadbalance.${i}.route`))
      if ('conditional' in node) {
        node.conditional.forEach((r, i) => walk(r.route, `${path}.conditional.${i}.route`))
        if (node.default !== undefined) walk(node.default, `${path}.default`)
        return
      }
      node.cascade.forEach((tier, i) => {
        walk(tier.route, `${path}.cascade.${i}.route`)
        if (tier.checks?.judge) checkTarget(tier.checks.judge.target, `${path}.cascade.${i}.checks.judge.target`)
      })
      if (node.router) {
        if (!scorerNamed(node.router.scorer)) fail(`${path}.router.scorer`, `scorer "${node.router.scorer}" is not registered`, 'use "builtin" or register it with registerScorer()')
        const th = node.router.threshold
        if (Array.isArray(th) && th.some((t, i) => i > 0 && t < th[i - 1]!)) fail(`${path}.router.threshold`, 'thresholds are not ascending', 'list them from lowest to highest')
      }
    }
    for (const [alias, node] of Object.entries(routing.routes)) walk(node, `routes.${alias}`)
    for (const name of Object.keys(routing.targets)) checkTarget(name, `targets.${name}`)
  }
}

export { createRoutingState, type RoutingState } from './state.js'
export { createRoutingMetrics, type RoutingMetrics } from './metrics.js'
export { registerScorer, builtinScorer, featureScorer, promptFeatures, BUILTIN_WEIGHTS, type DifficultyScorer, type FeatureWeights, type PromptFeatures } from './scorer.js'
export { routingPolicySchema, type RoutingPolicy } from './schema.js'
export { UpstreamError }
