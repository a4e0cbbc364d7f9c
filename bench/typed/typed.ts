/**
 * The Switchyard side, written once over any `Broker` layer: the typed public API users call.
 *
 * - publish:    `Topic.make(name, Order)` + `Publisher.publish` from `fibers` concurrent fibers
 *               (`Effect.forEach(…, { concurrency })`), each awaiting its broker confirmation.
 * - publishAll: `Publisher.publishAll` of `batch` values, one call after another.
 * - pipeline:   `Stream.fromIterable(orders).pipe(Stream.run(Publisher.sink(topic, { batchSize })))`
 *               while `Consumer.run(topic, handler, { group, concurrency, ordering[, prefetch] })` handles
 *               them; timed from the first publish to the last order handled.
 * - paced pipeline (`rate`): `Publisher.publish` of one order at a time at `rate` per second (each call
 *               runs on its own, awaiting its confirmation), each order's publish-call → handler latency kept.
 *
 * Tuned cases: `References.TracerEnabled` and `Telemetry.PerMessageMetrics` false, `prefetch: 1000`, sink
 * `batchSize: 1000`. Default cases
 * pass none of these (the library's defaults apply). Traced cases run the defaults under a tracing backend
 * (`spanRecorder`).
 */
import { Consumer, Publisher, Switchyard, Telemetry, Topic } from "@switchyard/core"
import type { Broker } from "@switchyard/core"
import { Effect, Fiber, Layer, References, Stream, Tracer } from "effect"
import { chunks, Latency, Meter, orders, paced, Tracker } from "./common.ts"
import { makeOrder, Order, TUNED_PREFETCH, type WorkerInput, type WorkerResult } from "./spec.ts"

/** A tracing backend at its cheapest: Effect's in-memory spans, exported nowhere (but not `Tracer.nativeTracer`). */
const spanRecorder = Tracer.make({ span: (options) => new Tracer.NativeSpan(options) })

export interface TypedOptions<R> {
  /**
   * Core NATS only: publish probe orders until the consumer receives one, so that no warm-up message is
   * published before the subscription exists (core NATS drops those).
   */
  readonly probe?: boolean
  /** An in-process broker-side check after the consumer stopped (memory). */
  readonly check?: (input: WorkerInput, published: number) => Effect.Effect<string, unknown, R>
}

export const runTyped = <R, E>(
  input: WorkerInput,
  brokerLayer: Layer.Layer<Broker.Broker | R, E>,
  options: TypedOptions<R> = {}
): Promise<WorkerResult> => {
  const spec = input.case
  const topic = Topic.make(input.destination, Order, { key: (o) => o.customer })
  const meter = new Meter()
  const tracker = new Tracker()
  const latency = new Latency()
  let published = 0
  const rate = spec.rate

  // Each paced publish is a separate run of the user's call on the program's services, as a request handler's would be.
  const pacedPhase = (values: ReadonlyArray<Order>, perSecond: number, timed: boolean) =>
    Effect.flatMap(Effect.context<Publisher.Publisher>(), (services) => {
      const run = Effect.runPromiseWith(services)
      return Effect.promise(() =>
        paced(values, perSecond, (o) => {
          if (timed) latency.sent(o.orderId)
          return run(Publisher.publish(topic, o)).then(() => void published++)
        })
      )
    })

  const publishPhase = (values: ReadonlyArray<Order>, timed = false) =>
    rate !== undefined
      ? pacedPhase(values, rate, timed)
      : spec.kind === "publish"
      ? Effect.forEach(values, (o) => Effect.map(Publisher.publish(topic, o), () => void published++), {
        concurrency: spec.fibers ?? 64,
        discard: true
      })
      : spec.kind === "publishAll"
      ? Effect.forEach(chunks(values, spec.batch ?? 1000), (batch) =>
        Effect.map(Publisher.publishAll(topic, batch), (receipts) => void (published += receipts.length)), { discard: true })
      : Effect.map(
        Stream.fromIterable(values).pipe(Stream.run(Publisher.sink(topic, { batchSize: spec.batch }))),
        () => void (published += values.length)
      )

  const program = Effect.gen(function*() {
    const warm = orders(0, input.warmup)
    const timed = orders(input.warmup, input.n)
    if (spec.kind !== "pipeline") {
      yield* publishPhase(warm)
      meter.start()
      yield* publishPhase(timed)
      meter.stop()
    } else {
      const handle = rate === undefined
        ? (order: Order) => Effect.sync(() => tracker.record(order))
        : (order: Order) => Effect.sync(() => {
          latency.received(order.orderId)
          return tracker.record(order)
        })
      const consumer = yield* Consumer.run(topic, handle, {
        group: input.group,
        concurrency: spec.concurrency,
        ordering: spec.ordering,
        ...(input.prefetch !== undefined ? { prefetch: input.prefetch } : spec.tuned ? { prefetch: TUNED_PREFETCH } : {})
      }).pipe(Effect.forkChild)
      // Either every order is handled, or the consumer failed (then the run fails loudly).
      const handledUpTo = (target: number) =>
        Effect.raceFirst(
          Effect.promise(() => tracker.until(target)),
          Effect.flatMap(Fiber.join(consumer), () => Effect.die(new Error("the consumer ended early")))
        )
      if (options.probe === true) {
        for (let p = 0; tracker.handled === 0; p++) {
          yield* Publisher.publish(topic, { ...makeOrder(p), orderId: `probe-${p}` })
          published++
          yield* Effect.sleep("20 millis")
        }
      }
      const probes = tracker.seen.size
      yield* publishPhase(warm)
      yield* handledUpTo(probes + warm.length)
      meter.start()
      yield* Effect.all([publishPhase(timed, true), handledUpTo(probes + warm.length + timed.length)], { concurrency: 2 })
      meter.stop()
      yield* Fiber.interrupt(consumer) // graceful: settles what is in flight, closes the subscription
    }
    const brokerNote = options.check === undefined ? undefined : yield* options.check(input, published)
    const consumed = [...tracker.seen].filter((id) => !id.startsWith("probe-")).length
    const result: WorkerResult = {
      elapsedMs: meter.elapsedMs,
      cpuMicros: meter.cpuMicros,
      maxRssKiB: 0,
      published,
      consumed,
      ...(rate !== undefined ? { latency: latency.summary() } : {}),
      ...(brokerNote !== undefined ? { brokerNote } : {})
    }
    return result
  })

  return Effect.runPromise(
    program.pipe(
      Effect.provide(Switchyard.on(brokerLayer)),
      spec.tuned
        ? (self) => self.pipe(Effect.provideService(References.TracerEnabled, false), Effect.provideService(Telemetry.PerMessageMetrics, false))
        : spec.traced === true
        ? Effect.withTracer(spanRecorder)
        : (self) => self,
      Effect.scoped
    ) as Effect.Effect<WorkerResult, unknown>
  )
}
