import OpenAI from 'openai'
import { startFakeAnthropic, type FakeAnthropic } from '../fakes/anthropic.js'
import { startFakeOpenAI, type FakeOpenAI } from '../fakes/openai.js'
import { TEAM_A_KEY, startTestGateway, type TestGateway, type TestGatewayOptions } from './gateway.js'

export interface StackOptions extends Omit<TestGatewayOptions, 'openaiUrl' | 'openaiKey' | 'anthropicUrl' | 'anthropicKey' | 'config'> {
  /** Also start a fake Anthropic upstream for the `anthropic` provider (else it points at a dead port). */
  anthropic?: boolean
  /** Extra top-level config; a function gets the fakes, for providers that name their URLs. */
  config?: Record<string, unknown> | ((fakes: { fake: FakeOpenAI; anthropic?: FakeAnthropic }) => Record<string, unknown>)
}

/** `A`: whether a fake Anthropic upstream was started (`anthropic: true`). */
export interface Stack<A extends boolean = boolean> {
  fake: FakeOpenAI
  anthropic: A extends true ? FakeAnthropic : undefined
  gw: TestGateway
  /** The openai SDK as team `a`, no retries. */
  client: OpenAI
  /** The openai SDK with another key, no retries. */
  clientFor(key: string): OpenAI
  /** Forget the fakes' scripts (for `beforeEach`). */
  reset(): void
  /** Close the gateway, then the fakes. */
  close(): Promise<void>
}

/**
 * A fake OpenAI upstream (and, with `anthropic: true`, a fake Anthropic one), a test gateway pointed at them,
 * and an openai client for team `a`: the setup of most HTTP tests.
 *
 * @example
 * let stack: Stack
 * beforeAll(async () => (stack = await startStack({ policies: { a: { cache: {} } } })))
 * afterAll(() => stack?.close())
 */
export async function startStack<A extends boolean = false>(opts: StackOptions & { anthropic?: A } = {}): Promise<Stack<A>> {
  const { anthropic: withAnthropic, config, ...rest } = opts
  const fake = await startFakeOpenAI()
  let anthropic: FakeAnthropic | undefined
  let gw: TestGateway
  try {
    anthropic = withAnthropic ? await startFakeAnthropic() : undefined
    gw = await startTestGateway({
      ...rest,
      openaiUrl: fake.url,
      openaiKey: fake.apiKey,
      anthropicUrl: anthropic?.url,
      anthropicKey: anthropic?.apiKey,
      config: typeof config === 'function' ? config({ fake, anthropic }) : config
    })
  } catch (err) {
    // a failed start must not leave the fakes listening
    await anthropic?.close()
    await fake.close()
    throw err
  }
  const clientFor = (key: string) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 })
  return {
    fake,
    anthropic: anthropic as Stack<A>['anthropic'],
    gw,
    client: clientFor(TEAM_A_KEY),
    clientFor,
    reset() {
      fake.script = undefined
      anthropic?.setScript(undefined)
    },
    async close() {
      await gw.close(0)
      await fake.close()
      await anthropic?.close()
    }
  }
}
