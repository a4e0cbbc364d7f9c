import { Broker, Envelope } from "@switchyard/core"
import { Duration, Effect, Stream } from "effect"

export const servers = process.env["NATS_URL"] ?? "nats://127.0.0.1:4222"

export const unique = (prefix: string): string => `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export const message = (
  body: string,
  extra: Partial<Envelope.OutgoingMessage> = {}
): Envelope.OutgoingMessage => Envelope.outgoing(encoder.encode(body), { contentType: "text/plain", ...extra })

export const text = (d: Broker.RawDelivery): string => decoder.decode(d.envelope.payload)

/** Takes `n` deliveries (acking them when `ack`), failing after `within`. */
export const take = (
  sub: Broker.Subscription,
  n: number,
  options: { readonly ack?: boolean; readonly within?: Duration.Input } = {}
) =>
  sub.deliveries.pipe(
    Stream.take(n),
    Stream.tap((d) => (options.ack ?? true) ? d.ack : Effect.void),
    Stream.runCollect,
    Effect.timeout(options.within ?? "10 seconds")
  )

/** Collects whatever arrives within `window` (for "nothing more arrives" assertions). */
export const drainFor = (sub: Broker.Subscription, window: Duration.Input) =>
  sub.deliveries.pipe(
    Stream.tap((d) => d.ack),
    Stream.interruptWhen(Effect.sleep(window)),
    Stream.runCollect
  )

export const subscribeOptions = (group: string, extra: Partial<Broker.SubscribeOptions> = {}): Broker.SubscribeOptions => ({
  ...Broker.defaultSubscribeOptions,
  group,
  ...extra
})
