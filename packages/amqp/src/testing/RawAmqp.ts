/**
 * A raw amqplib client for tests: what a foreign producer or an operator does next to Switchyard (publish
 * with the plain client, declare a topology, count or empty a queue), scoped and as Effects.
 *
 * @since 0.3.0
 */
import * as amqp from "amqplib"
import { Duration, Effect, Schedule, Schema, type Scope } from "effect"
import type * as AmqpTopology from "../AmqpTopology.ts"
import * as Provision from "../internal/provision.ts"

/**
 * A raw client call failed.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RawAmqp } from "@switchyard/amqp/testing"
 * RawAmqp.queueDepth("amqp://127.0.0.1", "orders.billing").pipe(Effect.catchTag("RawAmqpError", (e) => Effect.die(e)))
 * ```
 * @since 0.3.0
 */
export class RawAmqpError extends Schema.TaggedError<RawAmqpError>()("RawAmqpError", {
  message: Schema.String
}) {}

const call = <A>(what: string, run: () => Promise<A>): Effect.Effect<A, RawAmqpError> =>
  Effect.tryPromise({
    try: run,
    catch: (error) => new RawAmqpError({ message: `${what}: ${error instanceof Error ? error.message : String(error)}` })
  })

/**
 * A raw amqplib confirm channel on its own connection (a foreign producer), closed with the scope.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RawAmqp } from "@switchyard/amqp/testing"
 * const program = Effect.scoped(Effect.flatMap(RawAmqp.channel("amqp://guest:guest@127.0.0.1:5672"), (channel) =>
 *   RawAmqp.publish(channel, "orders", [{ content: new TextEncoder().encode("{}"), options: { messageId: "o-1" } }])
 * ))
 * ```
 * @since 0.3.0
 */
export const channel = (url: string): Effect.Effect<amqp.ConfirmChannel, RawAmqpError, Scope.Scope> =>
  Effect.acquireRelease(
    call("connecting", () => amqp.connect(url)),
    (connection) => Effect.ignore(call("closing", () => connection.close()))
  ).pipe(
    Effect.flatMap((connection) => call("opening a channel", () => connection.createConfirmChannel())),
    Effect.tap((channel) => Effect.sync(() => channel.on("error", () => undefined)))
  )

/**
 * A message as the raw client publishes it.
 *
 * @since 0.3.0
 */
export interface RawMessage {
  readonly content: Uint8Array
  readonly options?: amqp.Options.Publish | undefined
  readonly routingKey?: string | undefined
}

/**
 * Publishes with the raw client (honouring `drain`) and waits for the broker's confirms.
 *
 * @example
 * ```ts
 * import type { ConfirmChannel } from "amqplib"
 * import { RawAmqp } from "@switchyard/amqp/testing"
 * declare const channel: ConfirmChannel
 * const sent = RawAmqp.publish(channel, "orders", [{ content: new Uint8Array([1]), routingKey: "eu" }])
 * ```
 * @since 0.3.0
 */
export const publish = (
  channel: amqp.ConfirmChannel,
  exchange: string,
  messages: ReadonlyArray<RawMessage>
): Effect.Effect<void, RawAmqpError> => {
  const drained = call("waiting for drain", () => new Promise((resolve) => channel.once("drain", resolve)))
  const write = (m: RawMessage) =>
    Effect.try({
      try: () => channel.publish(exchange, m.routingKey ?? "", Buffer.from(m.content), m.options ?? {}),
      catch: (error) => new RawAmqpError({ message: `publishing: ${String(error)}` })
    }).pipe(Effect.flatMap((written) => written ? Effect.void : Effect.asVoid(drained)))
  return Effect.forEach(messages, write, { discard: true }).pipe(
    Effect.andThen(call("waiting for confirms", () => channel.waitForConfirms()))
  )
}

/**
 * Declares a topology with the raw channel (e.g. a consumer group's queue before anything subscribes).
 *
 * @example
 * ```ts
 * import type { ConfirmChannel } from "amqplib"
 * import { AmqpTopology } from "@switchyard/amqp"
 * import { RawAmqp } from "@switchyard/amqp/testing"
 * declare const channel: ConfirmChannel
 * const declared = RawAmqp.declare(channel, AmqpTopology.consumerGroup("orders", "billing"))
 * ```
 * @since 0.3.0
 */
export const declare = (channel: amqp.Channel, topology: AmqpTopology.Topology): Effect.Effect<void, RawAmqpError> =>
  Effect.mapError(Provision.declareOn(channel, topology), (reason) => new RawAmqpError({ message: reason.message }))

/** Runs `use` on a channel of a fresh connection, closed afterwards. */
const withChannel = <A>(url: string, use: (channel: amqp.Channel) => Promise<A>): Effect.Effect<A, RawAmqpError> =>
  Effect.scoped(Effect.flatMap(channel(url), (ch) => call("raw call", () => use(ch))))

/**
 * The ready messages of a queue (0 when it does not exist).
 *
 * @example
 * ```ts
 * import { RawAmqp } from "@switchyard/amqp/testing"
 * const depth = RawAmqp.queueDepth("amqp://guest:guest@127.0.0.1:5672", "orders.dlq")
 * ```
 * @since 0.3.0
 */
export const queueDepth = (url: string, queue: string): Effect.Effect<number, RawAmqpError> =>
  withChannel(url, (ch) => ch.checkQueue(queue).then((q) => q.messageCount, () => 0))

/**
 * Reads and removes every ready message of a queue with `basic.get` (none when it does not exist).
 *
 * @example
 * ```ts
 * import { RawAmqp } from "@switchyard/amqp/testing"
 * const parked = RawAmqp.drain("amqp://guest:guest@127.0.0.1:5672", "orders.dlq")
 * ```
 * @since 0.3.0
 */
export const drain = (url: string, queue: string): Effect.Effect<ReadonlyArray<amqp.GetMessage>, RawAmqpError> =>
  withChannel(url, async (ch) => {
    const out: Array<amqp.GetMessage> = []
    // a queue that does not exist yet (declared on the first dead letter) is empty
    if (await ch.checkQueue(queue).then(() => false, () => true)) return out
    for (let msg = await ch.get(queue, { noAck: true }); msg !== false; msg = await ch.get(queue, { noAck: true })) {
      out.push(msg)
    }
    return out
  })

/**
 * Collects a queue's messages (removing them) until there are `count`, polling; fails after `within`.
 *
 * @example
 * ```ts
 * import { RawAmqp } from "@switchyard/amqp/testing"
 * const parked = RawAmqp.awaitMessages("amqp://guest:guest@127.0.0.1:5672", "orders.dlq", 3, { within: "10 seconds" })
 * ```
 * @since 0.3.0
 */
export const awaitMessages = (
  url: string,
  queue: string,
  count: number,
  options: { readonly within?: Duration.Input | undefined } = {}
): Effect.Effect<ReadonlyArray<amqp.GetMessage>, RawAmqpError> =>
  Effect.suspend(() => {
    const out: Array<amqp.GetMessage> = []
    return drain(url, queue).pipe(
      Effect.tap((got) => Effect.sync(() => out.push(...got))),
      Effect.repeat({ schedule: Schedule.spaced("100 millis"), until: () => out.length >= count }),
      Effect.timeoutOrElse({
        duration: Duration.fromInputUnsafe(options.within ?? "30 seconds"),
        orElse: () => Effect.fail(new RawAmqpError({ message: `queue ${queue}: ${out.length} of ${count} messages` }))
      }),
      Effect.as(out)
    )
  })
