// The program the packaging test installs from the packed tarballs into a fresh project outside the
// workspace, compiles with tsc (NodeNext and Bundler resolution) and runs with plain `node`:
//   node out/main.js memory|amqp|nats
// It publishes three orders and consumes them (plus one undecodable payload, which must end in the dead
// letter destination), then prints one JSON line the test checks.
import { AmqpBroker } from "@switchyard/amqp"
import { Broker, Codec, Consumer, Headers, Publisher, Switchyard, Topic } from "@switchyard/core"
import type { Envelope, Errors, Subscriber } from "@switchyard/core"
import { NatsBroker } from "@switchyard/nats"
import { Deferred, Effect, Fiber, Layer, Ref, Schedule, Schema } from "effect"

const OrderPlaced = Schema.Struct({ orderId: Schema.String, total: Schema.Number })
type OrderPlaced = typeof OrderPlaced.Type

const which = process.argv[2] ?? "memory"
const suffix = `${Date.now()}${Math.floor(Math.random() * 1e6)}`
const orders = Topic.make(`pkgtest-orders-${suffix}`, OrderPlaced, { key: (o) => o.orderId })
// The same destination as text, to publish a payload the JSON codec cannot decode.
const ordersAsText = Topic.withCodec(orders.name, Codec.string)
const deadLetters = Topic.withCodec(`${orders.name}.dlq`, Codec.bytes)

const brokerLayer = (
  name: string
): Layer.Layer<Broker.Broker | Publisher.Publisher | Subscriber.Subscriber, Errors.ConnectionError> => {
  switch (name) {
    case "memory":
      return Switchyard.layerMemory()
    case "amqp":
      return Switchyard.on(AmqpBroker.layer({ hostname: "127.0.0.1", port: 5672, username: "guest", unroutable: "fail" }))
    case "nats":
      return Switchyard.on(NatsBroker.layer({ connection: { servers: "nats://127.0.0.1:4222" } }))
    default:
      throw new Error(`unknown broker ${name}`)
  }
}

const program = Effect.gen(function*() {
  const broker = yield* Broker.Broker
  const handled = yield* Ref.make<ReadonlyArray<string>>([])
  const deadLettered = yield* Ref.make<ReadonlyArray<Envelope.Envelope>>([])
  const allHandled = yield* Deferred.make<void>()
  const oneDeadLetter = yield* Deferred.make<void>()

  const handler = (order: OrderPlaced) =>
    Ref.updateAndGet(handled, (ids) => [...ids, order.orderId]).pipe(
      Effect.flatMap((ids) => ids.length >= 3 ? Deferred.succeed(allHandled, undefined) : Effect.void)
    )
  const consumer = yield* Consumer.run(orders, handler, { group: "pkgtest" }).pipe(Effect.forkChild)
  const dlqWatcher = yield* Consumer.run(deadLetters, (_value, envelope) =>
    Ref.update(deadLettered, (all) => [...all, envelope]).pipe(
      Effect.andThen(Deferred.succeed(oneDeadLetter, undefined))
    ), { group: "pkgtest-dlq" }).pipe(Effect.forkChild)

  // RabbitMQ has no history: until the group's queue is bound, a publish is unroutable (`unroutable: "fail"` above).
  const untilRoutable = Schedule.spaced("100 millis").pipe(Schedule.upTo({ times: 100 }))
  const orderIds = ["o-1", "o-2", "o-3"]
  yield* Effect.retry(Publisher.publish(orders, { orderId: orderIds[0] ?? "", total: 1 }), untilRoutable)
  yield* Publisher.publishAll(orders, orderIds.slice(1).map((orderId, i) => ({ orderId, total: i + 2 })))
  yield* Publisher.publish(ordersAsText, "{ not json")

  yield* Deferred.await(allHandled).pipe(Effect.timeout("30 seconds"))
  yield* Deferred.await(oneDeadLetter).pipe(Effect.timeout("30 seconds"))
  yield* Fiber.interrupt(consumer)
  yield* Fiber.interrupt(dlqWatcher)
  const dead = yield* Ref.get(deadLettered)
  console.log(JSON.stringify({
    broker: broker.system,
    node: process.versions.node,
    handled: [...(yield* Ref.get(handled))].sort(),
    deadLetterReason: dead[0]?.headers[Headers.deadLetterReason] ?? null
  }))
})

Effect.runPromise(program.pipe(Effect.provide(Layer.fresh(brokerLayer(which))), Effect.scoped)).then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  }
)
