#!/usr/bin/env node
import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from './config/load.js'
import { watchConfig } from './config/watch.js'
import { startServer, type Logger } from './server.js'

const HELP = `sluice — an LLM gateway

Usage: sluice <command> [options]

Commands:
  start                 serve the gateway (default)
  check-config          validate the config and its policy files, then exit

Options:
  -c, --config <file>   config file (default: $SLUICE_CONFIG or config/gateway.yaml)
  -p, --port <port>     port to listen on (default: $PORT or server.port)
  -h, --help            show this help
`

/** Logs never carry request bodies or keys: only the gateway's own messages. */
const log: Logger = (level, msg) => {
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg })
  if (level === 'error') console.error(line)
  else console.log(line)
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: false,
    options: { config: { type: 'string', short: 'c' }, port: { type: 'string', short: 'p' }, help: { type: 'boolean', short: 'h' } }
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
      const server = await startServer(config, { port: portArg ? Number(portArg) : undefined, log })
      const stopWatching = watchConfig(config, (next) => server.gateway.reload(next), (err) => {
        server.gateway.reloadFailed(err)
        log(err ? 'error' : 'info', err ? `config reload rejected, keeping the running config: ${err}` : 'config reloaded')
      })
      log('info', `sluice listening on ${server.url} (store: ${config.store.kind})`)
      let stopping = false
      const stop = async (signal: string) => {
        if (stopping) {
          log('warn', `${signal} again: exiting now`)
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
    default:
      process.stderr.write(`unknown command "${command}"\n\n${HELP}`)
      return 2
  }
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
