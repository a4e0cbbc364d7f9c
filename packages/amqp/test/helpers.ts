import { execFile } from "node:child_process"
import { promisify } from "node:util"
import { Broker, Envelope } from "@switchyard/core"
import { Effect, Queue, Redacted, Stream } from "effect"
import type { Scope } from "effect"
import { AmqpBroker } from "../src/index.ts"
import { RawAmqp } from "../src/testing/index.ts"

export const options: AmqpBroker.Options = {
  hostname: process.env["AMQP_HOST"] ?? "127.0.0.1",
  port: Number(process.env["AMQP_PORT"] ?? "5672"),
  username: "guest",
  password: Redacted.make("guest"),
  connectionName: "switchyard-amqp-tests",
  connectTimeout: "5 seconds"
}

export const BrokerLive = AmqpBroker.layer(options)

export const unique = (prefix: string): string =>
  `sy-test.${prefix}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export const message = (id: string, body: string, extra: Partial<Envelope.OutgoingMessage> = {}): Envelope.OutgoingMessage =>
  Envelope.outgoing(encoder.encode(body), { id, contentType: "text/plain", ...extra })

export const text = (e: Envelope.Envelope): string => decoder.decode(e.payload)

/** Subscribes and collects deliveries into a queue, acking each (unless `ack: false`), in the current scope. */
export const collect = (
  destination: string,
  group: string,
  opts: { readonly prefetch?: number; readonly ack?: boolean } = {}
): Effect.Effect<Queue.Queue<Broker.RawDelivery>, unknown, Broker.Broker | Scope.Scope> =>
  Effect.gen(function*() {
    const broker = yield* Broker.Broker
    const sub = yield* broker.subscribe(destination, { group, prefetch: opts.prefetch ?? 100, startFrom: "earliest" })
    const out = yield* Queue.unbounded<Broker.RawDelivery>()
    yield* sub.deliveries.pipe(
      Stream.runForEach((d) => (opts.ack === false ? Effect.void : d.ack).pipe(Effect.andThen(Queue.offer(out, d)))),
      Effect.forkScoped
    )
    return out
  })

/** Takes `n` deliveries or fails after `timeout`. */
export const takeN = (q: Queue.Queue<Broker.RawDelivery>, n: number, timeout: import("effect").Duration.Input = "20 seconds") =>
  Effect.gen(function*() {
    const out: Array<Broker.RawDelivery> = []
    while (out.length < n) out.push(yield* Queue.take(q))
    return out
  }).pipe(Effect.timeout(timeout))

const exec = promisify(execFile)

/** Runs rabbitmqctl (the test machine's RabbitMQ node). */
export const rabbitmqctl = (...args: Array<string>) =>
  Effect.promise(() => exec("rabbitmqctl", args, { timeout: 120_000 }).then((r) => r.stdout))

export const amqpUrl = `amqp://guest:guest@${options.hostname}:${options.port}`

/** A raw amqplib confirm channel (a foreign producer), closed with the scope. */
export const rawChannel = RawAmqp.channel(amqpUrl)

/** Publishes with the raw client and waits for the broker's confirms. */
export const rawPublish = RawAmqp.publish

/** Reads and removes every message of a queue with basic.get (the dead-letter parking queue needs no subscriber). */
export const drainQueue = (queue: string) => RawAmqp.drain(amqpUrl, queue)

/** Collects the messages of a queue until there are `n` (polling with basic.get). */
export const awaitQueue = (queue: string, n: number) => RawAmqp.awaitMessages(amqpUrl, queue, n, { within: "5 minutes" })

/** Waits until `done()` holds, checking every 20 ms (bounded by the test's timeout). */
export const eventually = (done: () => boolean) =>
  Effect.gen(function*() {
    while (!done()) yield* Effect.sleep("20 millis")
  })
