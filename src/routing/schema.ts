import { z } from 'zod'

/** The `routing:` section of a team policy. Refined by the routing module. */
export const routingPolicySchema = z.strictObject({}).passthrough()
export type RoutingPolicy = z.infer<typeof routingPolicySchema>
