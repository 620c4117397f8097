import { existsSync, statSync, watch, type FSWatcher } from 'node:fs'
import { ConfigError, loadConfig, type GatewayConfig } from './load.js'

/**
 * Reload the config when any of its files changes (gateway config, prices, policy files). A config that
 * fails to load or validate is reported and the running one is kept.
 *
 * @example
 * const stop = watchConfig(config, (next) => gateway.reload(next), (err) => gateway.reloadFailed(err))
 */
export function watchConfig(
  current: GatewayConfig,
  apply: (next: GatewayConfig) => void,
  report: (error: string | undefined) => void,
  opts: { debounceMs?: number; env?: Record<string, string | undefined> } = {}
): () => void {
  let watchers: FSWatcher[] = []
  let timer: NodeJS.Timeout | undefined
  let config = current

  let missingTimer: NodeJS.Timeout | undefined
  const arm = () => {
    for (const w of watchers) w.close()
    watchers = []
    clearTimeout(missingTimer)
    let missing = false
    for (const f of config.files) {
      try {
        const w = watch(f, () => schedule())
        w.on('error', () => schedule())
        watchers.push(w)
      } catch {
        // a file that is gone (a policy deleted or being replaced) cannot be watched: the reload reported it
        missing = true
      }
    }
    // look for it again every second; once it is back, reload
    if (missing) {
      missingTimer = setTimeout(() => (config.files.every((f) => existsSync(f)) ? schedule() : arm()), 1000)
      missingTimer.unref()
    }
  }

  /** One reload at a time: two in flight could finish out of order and leave the older files applied. */
  let reloading = false
  let again = false

  const schedule = () => {
    clearTimeout(timer)
    timer = setTimeout(() => {
      if (reloading) again = true
      else void reload()
    }, opts.debounceMs ?? 150)
    timer.unref()
  }

  const reload = async () => {
    reloading = true
    try {
      await reloadOnce()
    } finally {
      reloading = false
    }
    if (again) {
      again = false
      schedule()
    }
  }

  const reloadOnce = async () => {
    const files = config.files
    const before = stamp(files)
    try {
      const next = await loadConfig(config.file, opts.env)
      apply(next)
      config = next
      report(undefined)
    } catch (err) {
      report(err instanceof ConfigError ? err.message : `reload failed: ${(err as Error).message}`)
    }
    // editors replace files (new inode): watch the paths again
    arm()
    // A replace that landed after the watcher fired and before arm() went to an inode nobody watched: no event
    // will come for it, so look (a burst of replaces lost its last one this way)
    if (stamp(files) !== before) schedule()
  }

  arm()
  return () => {
    clearTimeout(timer)
    clearTimeout(missingTimer)
    for (const w of watchers) w.close()
  }
}

/** Identity and version of each file (inode, mtime, size): what a replace or an edit changes. */
function stamp(files: string[]): string {
  return files
    .map((f) => {
      try {
        const s = statSync(f)
        return `${s.ino}:${s.mtimeMs}:${s.size}`
      } catch {
        return 'missing'
      }
    })
    .join('|')
}
