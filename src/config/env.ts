/**
 * `${VAR}` and `${VAR:-default}` interpolation over a parsed YAML tree.
 * A string that is exactly one unset variable becomes undefined, and its path is reported, so the
 * loader can mark a provider unavailable ("OPENAI_API_KEY is not set") instead of failing.
 *
 * @example
 * interpolateEnv({ api_key: '${OPENAI_API_KEY}' }, {}) // { value: { api_key: undefined }, missing: [{ path: ['api_key'], name: 'OPENAI_API_KEY' }] }
 */
export function interpolateEnv(
  tree: unknown,
  env: Record<string, string | undefined>
): { value: unknown; missing: { path: (string | number)[]; name: string }[] } {
  const missing: { path: (string | number)[]; name: string }[] = []
  const pattern = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g

  const walk = (node: unknown, path: (string | number)[]): unknown => {
    if (typeof node === 'string') {
      const whole = /^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}$/.exec(node)
      if (whole) {
        const v = env[whole[1]!]
        if (v !== undefined && v !== '') return v
        if (whole[2] !== undefined) return whole[2]
        missing.push({ path, name: whole[1]! })
        return undefined
      }
      return node.replace(pattern, (_, name: string, dflt?: string) => {
        const v = env[name]
        if (v !== undefined && v !== '') return v
        if (dflt !== undefined) return dflt
        missing.push({ path, name })
        return ''
      })
    }
    if (Array.isArray(node)) return node.map((v, i) => walk(v, [...path, i]))
    if (node && typeof node === 'object') {
      const out: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(node)) out[k] = walk(v, [...path, k])
      return out
    }
    return node
  }

  return { value: walk(tree, []), missing }
}
