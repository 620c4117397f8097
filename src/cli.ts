#!/usr/bin/env node
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from './config/load.js'
import { watchConfig } from './config/watch.js'
import { AdminClientError, createAdminClient } from './admin/client.js'
import { startServer, type Logger } from './server.js'
import { preloadEncodings, shouldPreloadEncodings } from './tokens.js'

const HELP = `sluice — an LLM gateway

Usage: sluice <command> [options]

Commands:
  start                          serve the gateway (default)
  check-config                   validate the config and its policy files, then exit
  keys create --team T [--user U] [--name N]
                                 make a virtual key (printed once; only its hash is kept)
  keys list [--team T]           list keys (ids, team, user, name, revoked)
  keys revoke <id>               revoke a key (id from keys list)
  keys rotate <id>               issue a replacement key and revoke the old one
  spend [--team T] [--since 7d] [--until 1d] [--by model]
                                 spend from the ledger, grouped by team, key, user,
                                 session, agent, tag, model, provider or day

Options:
  -c, --config <file>   config file (default: $SLUICE_CONFIG or config/gateway.yaml)
  -p, --port <port>     port to listen on (default: $PORT or server.port)
  --url <url>           gateway for keys/spend (default: $SLUICE_URL or http://127.0.0.1:8080)
  --admin-key <key>     admin key for keys/spend (default: $SLUICE_ADMIN_KEY); a team
                        key works for list and spend of its own team
  --json                print the admin API's JSON answer
  -h, --help            show this help
`

/** Logs never carry request bodies or keys: only the gateway's own messages. */
const log: Logger = (level, msg, fields) => {
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })
  if (level === 'error') console.error(line)
  else console.log(line)
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: false,
    options: {
      config: { type: 'string', short: 'c' },
      port: { type: 'string', short: 'p' },
      help: { type: 'boolean', short: 'h' },
      url: { type: 'string' },
      'admin-key': { type: 'string' },
      team: { type: 'string' },
      user: { type: 'string' },
      name: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      by: { type: 'string' },
      json: { type: 'boolean' }
    }
  })
  const command = positionals[0] ?? 'start'
  if (values.help) {
    process.stdout.write(HELP)
    return 0
  }
  const file = (values.config as string | undefined) ?? process.env.SLUICE_CONFIG ?? 'config/gateway.yaml'

  switch (command) {
    case 'check-config': {
      const config = await loadConfig(file)
      for (const w of config.warnings) console.log(`warning: ${w}`)
      console.log(`${config.file}: ok (${Object.keys(config.models).length} models, ${Object.keys(config.teams).length} teams, ${config.keys.length} keys)`)
      return 0
    }
    case 'start': {
      const config = await loadConfig(file)
      for (const w of config.warnings) log('warn', w)
      for (const [p, v] of Object.entries(config.missingEnv)) log('warn', `provider "${p}" unavailable: ${v} is not set`)
      const portArg = (values.port as string | undefined) ?? process.env.PORT
      // tiktoken tables load before the port opens, not on the first request (o200k: about 350 ms), unless
      // tokenizer.preload says otherwise (auto, never: on first use, ~70 MB less RSS, ~8 % more CPU per miss)
      if (shouldPreloadEncodings(config)) preloadEncodings(Object.values(config.models))
      const server = await startServer(config, { port: portArg ? Number(portArg) : undefined, log })
      const stopWatching = watchConfig(config, (next) => {
        server.gateway.reload(next)
        if (shouldPreloadEncodings(next)) preloadEncodings(Object.values(next.models))
      }, (err) => {
        server.gateway.reloadFailed(err)
        log(err ? 'error' : 'info', err ? `config reload rejected, keeping the running config: ${err}` : 'config reloaded')
      })
      log('info', `sluice listening on ${server.listening} (store: ${config.store.kind})`)
      let stopping = false
      const stop = async (signal: string) => {
        if (stopping) {
          // exit within about a second, but first abort what is in flight and write what it used
          log('warn', `${signal} again: aborting in-flight requests, writing the ledger (at most 1 s), exiting`)
          setTimeout(() => process.exit(1), 1000)
          await server.gateway.abortInflight(500).catch(() => {})
          process.exit(1)
        }
        stopping = true
        log('info', `${signal}: draining for up to ${config.server.shutdown_grace_ms} ms`)
        stopWatching()
        await server.close()
        log('info', 'stopped')
        process.exit(0)
      }
      process.on('SIGTERM', () => void stop('SIGTERM'))
      process.on('SIGINT', () => void stop('SIGINT'))
      return -1
    }
    case 'keys':
    case 'spend':
      return adminCommand(command, positionals.slice(1), values as Record<string, string | boolean | undefined>)
    default:
      process.stderr.write(`unknown command "${command}"\n\n${HELP}`)
      return 2
  }
}

/**
 * `keys` and `spend` talk to a running gateway's admin API (--url, --admin-key): the gateway makes the key in
 * its own store, so this works the same with the memory store and with Redis, and never needs store access.
 */
async function adminCommand(command: string, args: string[], values: Record<string, string | boolean | undefined>): Promise<number> {
  const str = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined)
  const key = str('admin-key') ?? process.env.SLUICE_ADMIN_KEY
  if (!key) {
    process.stderr.write('sluice: give the admin key with --admin-key or $SLUICE_ADMIN_KEY\n')
    return 2
  }
  const admin = createAdminClient({ url: str('url') ?? process.env.SLUICE_URL ?? 'http://127.0.0.1:8080', key })
  const print = (v: unknown) => process.stdout.write(JSON.stringify(v, null, 2) + '\n')
  try {
    if (command === 'spend') {
      const q = new URLSearchParams()
      for (const [param, opt] of [['team', 'team'], ['since', 'since'], ['until', 'until'], ['group_by', 'by'], ['user', 'user']] as const) {
        const v = str(opt)
        if (v) q.set(param, v)
      }
      if (!q.has('since')) q.set('since', '7d')
      if (!q.has('group_by')) q.set('group_by', q.has('team') ? 'model' : 'team')
      const spend = await admin.call('GET', `/admin/spend?${q}`)
      if (values.json) return print(spend), 0
      const rows: string[][] = [[q.get('group_by')!, 'requests', 'input tok', 'output tok', 'cost USD', 'saved USD']]
      for (const g of spend.groups ?? []) rows.push([g.key, String(g.requests), String(g.tokens.input), String(g.tokens.output), g.cost_usd.toFixed(6), g.saved_usd.toFixed(6)])
      rows.push(['total', String(spend.total.requests), String(spend.total.tokens.input), String(spend.total.tokens.output), spend.total.cost_usd.toFixed(6), spend.total.saved_usd.toFixed(6)])
      process.stdout.write(table(rows))
      return 0
    }
    const sub = args[0]
    if (sub === 'create') {
      const team = str('team')
      if (!team) {
        process.stderr.write('sluice: keys create needs --team\n')
        return 2
      }
      const made = await admin.call('POST', '/admin/keys', { team, user: str('user'), name: str('name') })
      if (values.json) return print(made), 0
      process.stdout.write(`${made.key}\n`)
      process.stderr.write(`key ${made.id} for team ${made.team}${made.user ? ` (user ${made.user})` : ''}: store it now, it is not shown again\n`)
      return 0
    }
    if (sub === 'list') {
      const listed = await admin.call('GET', `/admin/keys${str('team') ? `?team=${encodeURIComponent(str('team')!)}` : ''}`)
      if (values.json) return print(listed), 0
      const rows = [['id', 'team', 'user', 'name', 'created', 'state']]
      for (const k of listed.data) rows.push([k.id, k.team, k.user ?? '', k.name ?? '', k.created?.slice(0, 19) ?? '', k.revoked ? 'revoked' : k.source === 'config' ? 'config' : 'active'])
      process.stdout.write(table(rows))
      return 0
    }
    if ((sub === 'revoke' || sub === 'rotate') && args[1]) {
      const done = await admin.call('POST', `/admin/keys/${encodeURIComponent(args[1])}/${sub}`)
      if (values.json) return print(done), 0
      if (sub === 'revoke') process.stdout.write(`revoked ${done.id}\n`)
      else {
        process.stdout.write(`${done.key}\n`)
        process.stderr.write(`key ${done.id} replaces ${args[1]} (revoked): store it now, it is not shown again\n`)
      }
      return 0
    }
    process.stderr.write(`sluice: keys needs create, list, revoke <id> or rotate <id>\n\n${HELP}`)
    return 2
  } catch (err) {
    if (err instanceof AdminClientError) {
      process.stderr.write(`sluice: ${err.message}\n`)
      return 1
    }
    throw err
  }
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)))
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n'
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code)
  },
  (err) => {
    console.error(err instanceof ConfigError ? err.message : `sluice: ${(err as Error).message}`)
    process.exit(1)
  }
)
