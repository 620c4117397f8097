import type { ResolvedModel } from '../config/load.js'
import type { Provider } from '../providers/types.js'

/** A concrete place a request can be sent: a configured model on its provider. */
export interface Target {
  /** The model's public name in config (`models:` key). */
  name: string
  model: ResolvedModel
  provider: Provider
}
