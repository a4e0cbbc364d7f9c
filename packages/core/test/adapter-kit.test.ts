import { assert, describe, it } from "@effect/vitest"
import { Errors } from "@switchyard/core"
import { BrokerErrors, ConnectionOptions, DeliveryQueue, IncomingEnvelope, Provisioner, Settlement, Supervisor } from "@switchyard/core/adapter"
import { TestKit } from "@switchyard/core/testing"
import { Config, ConfigProvider, Deferred, Effect, Fiber, Option, Redacted, Ref, Schedule, Stream } from "effect"
import * as fc from "fast-check"

describe("Settlement", () => {
  it.effect("runs the first settlement only: never a double ack, a later nack is ignored", () =>
    Effect.gen(function*() {
      const sent = yield* Ref.make<ReadonlyArray<string>>([])
      const record = (what: string) => Ref.update(sent, (all) => [...all, what])
      const settle = Settlement.make("orders", { ack: record("ack"), nack: () => record("nack") })
      yield* settle.ack
      yield* settle.nack()
      yield* settle.ack
      assert.deepStrictEqual(yield* Ref.get(sent), ["ack"])
      assert.isTrue(settle.once.settled)
    }))

  it.effect("concurrent settlements reach the broker once", () =>
    Effect.gen(function*() {
      const count = yield* Ref.make(0)
      const settle = Settlement.make("orders", { ack: Ref.update(count, (n) => n + 1), nack: () => Ref.update(count, (n) => n + 100) })
      yield* Effect.all([settle.ack, settle.nack(), settle.ack, settle.nack({ delay: "1 second" })], { concurrency: "unbounded" })
      assert.strictEqual(yield* Ref.get(count), 1)
    }))

  it.effect("a settlement on a handle that is gone sends nothing and fails with a retryable BrokerClosed", () =>
    Effect.gen(function*() {
      const count = yield* Ref.make(0)
      const settle = Settlement.make("orders", { ack: Ref.update(count, (n) => n + 1), nack: () => Effect.void, isLive: () => false })
      const error = yield* Effect.flip(settle.ack)
      assert.strictEqual(error._tag, "AckError")
      assert.strictEqual(error.kind, "BrokerClosed")
      assert.isTrue(error.isRetryable)
      assert.strictEqual(yield* Ref.get(count), 0)
      // and it stays settled: no second attempt reaches the broker either
      yield* settle.ack
      assert.strictEqual(yield* Ref.get(count), 0)
    }))
})

describe("IncomingEnvelope", () => {
  const draft = (id: string | undefined, brokerId: IncomingEnvelope.Draft["brokerId"]): IncomingEnvelope.Draft => ({
    id,
    brokerId,
    key: undefined,
    headers: {},
    timestamp: 1_700_000_000_000,
    contentType: "application/json",
    payload: new Uint8Array(),
    correlationId: undefined,
    causationId: undefined,
    attempt: 1,
    coordinates: { destination: "orders", partition: 0, offset: "42" }
  })
  it("a broker id given as a function is built only for a message without a usable id of its own", () => {
    const calls: Array<string> = []
    const lazy = () => {
      calls.push("built")
      return "orders/0/42"
    }
    const own = IncomingEnvelope.finish(draft("order-1", lazy), () => 0)
    assert.deepStrictEqual([own.id, own.idSource, calls.length], ["order-1", "message", 0])
    for (const unusable of [undefined, "", "   ", "x".repeat(IncomingEnvelope.maxIdLength + 1)]) {
      const fallback = IncomingEnvelope.finish(draft(unusable, lazy), () => 0)
      assert.deepStrictEqual([fallback.id, fallback.idSource], ["orders/0/42", "broker"])
    }
    assert.strictEqual(calls.length, 4)
    const blank = IncomingEnvelope.finish(draft(undefined, () => ""), () => 0)
    assert.strictEqual(blank.idSource, "generated")
    assert.isTrue(blank.id.length > 0)
  })
  it("putHeader keeps every name as a header, __proto__ and constructor included; the last value wins", () => {
    const headers: Record<string, string> = {}
    for (const [name, value] of [["__proto__", "a"], ["constructor", "b"], ["x", "1"], ["x", "2"], ["__proto__", "c"]] as const) {
      IncomingEnvelope.putHeader(headers, name, value)
    }
    assert.deepStrictEqual(Object.entries(headers), [["__proto__", "c"], ["constructor", "b"], ["x", "2"]])
    assert.strictEqual(Object.getPrototypeOf(headers), Object.prototype)
  })
})

describe("DeliveryQueue", () => {
  it.effect("is bounded: offer says false when full and adds nothing", () =>
    Effect.gen(function*() {
      const queue = yield* DeliveryQueue.make<number>({ capacity: 2 })
      assert.deepStrictEqual([queue.offer(1), queue.offer(2), queue.offer(3)], [true, true, false])
      assert.strictEqual(queue.size(), 2)
      queue.end()
      assert.deepStrictEqual(Array.from(yield* Stream.runCollect(queue.stream)), [1, 2])
    }))

  it.effect("drain hands back what was not taken, and frees the room", () =>
    Effect.gen(function*() {
      const queue = yield* DeliveryQueue.make<number>({ capacity: 3 })
      queue.offer(1)
      queue.offer(2)
      assert.deepStrictEqual(yield* queue.drain, [1, 2])
      assert.strictEqual(queue.size(), 0)
      assert.isTrue(queue.offer(3))
    }))

  it.effect("fail ends the stream with the subscription's error after what was queued", () =>
    Effect.gen(function*() {
      const queue = yield* DeliveryQueue.make<number>({ capacity: 4 })
      queue.offer(7)
      queue.fail(new Errors.SubscribeError({ destination: "orders", reason: Errors.reason("BrokerClosed", "channel closed", 320) }))
      const taken: Array<number> = []
      const error = yield* Stream.runForEach(queue.stream, (n) => Effect.sync(() => taken.push(n))).pipe(Effect.flip)
      assert.deepStrictEqual(taken, [7])
      assert.strictEqual(error.reason._tag, "BrokerClosed")
      assert.strictEqual(error.reason.code, 320)
    }))

  it.effect("keeps order for any sequence of offers within capacity (property)", () =>
    Effect.promise(() =>
      fc.assert(
        fc.asyncProperty(fc.array(fc.integer(), { maxLength: 200 }), fc.integer({ min: 1, max: 64 }), async (values, capacity) => {
          const result = await Effect.runPromise(Effect.gen(function*() {
            const queue = yield* DeliveryQueue.make<number>({ capacity })
            const accepted = values.filter((v) => queue.offer(v))
            queue.end()
            return { accepted, taken: Array.from(yield* Stream.runCollect(queue.stream)) }
          }))
          assert.deepStrictEqual(result.taken, values.slice(0, capacity))
          assert.deepStrictEqual(result.accepted, values.slice(0, capacity))
        }),
        { numRuns: 100 }
      )
    ))
})

describe("Provisioner", () => {
  it.effect("declares once however many fibers ask at once, and again after invalidateAll", () =>
    Effect.gen(function*() {
      const declared = yield* Ref.make<ReadonlyArray<string>>([])
      const queues = yield* Provisioner.make({
        declare: (queue: string) => Effect.andThen(Effect.sleep("5 millis"), Ref.update(declared, (all) => [...all, queue]))
      })
      const fiber = yield* Effect.forkChild(
        Effect.all([queues.ensure("a"), queues.ensure("a"), queues.ensure("b"), queues.ensure("a")], { concurrency: "unbounded" })
      )
      yield* TestKit.advance("10 millis", "1 millis")
      yield* Fiber.join(fiber)
      assert.deepStrictEqual([...(yield* Ref.get(declared))].sort(), ["a", "b"])
      yield* queues.invalidateAll
      yield* Effect.forkChild(queues.ensure("a"))
      yield* TestKit.advance("10 millis", "1 millis")
      assert.deepStrictEqual([...(yield* Ref.get(declared))].sort(), ["a", "a", "b"])
    }))

  it.effect("a declaration in flight when its key is invalidated is not taken for a current one", () =>
    Effect.gen(function*() {
      const declared = yield* Ref.make(0)
      const gate = yield* Deferred.make<void>()
      const queues = yield* Provisioner.make({
        declare: (_: string) => Effect.andThen(Deferred.await(gate), Ref.update(declared, (n) => n + 1))
      })
      const first = yield* Effect.forkChild(queues.ensure("a"), { startImmediately: true })
      yield* queues.invalidate("a")
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(first)
      assert.strictEqual(yield* Ref.get(declared), 1)
      yield* queues.ensure("a")
      assert.strictEqual(yield* Ref.get(declared), 2)
      // Declared and not invalidated since: taken as it is from now on.
      yield* Effect.forEach([1, 2, 3], () => queues.ensure("a"), { discard: true })
      assert.strictEqual(yield* Ref.get(declared), 2)
    }))

  it.effect("does not remember a failed declaration: the next use tries again", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const streams = yield* Provisioner.make({
        declare: (_: { readonly name: string }) =>
          Ref.updateAndGet(attempts, (n) => n + 1).pipe(Effect.flatMap((n) => n === 1 ? Effect.fail("refused" as const) : Effect.void)),
        identify: (stream) => stream.name
      })
      assert.strictEqual(yield* Effect.flip(streams.ensure({ name: "orders" })), "refused")
      yield* streams.ensure({ name: "orders" })
      yield* streams.ensure({ name: "orders" })
      assert.strictEqual(yield* Ref.get(attempts), 2)
    }))
})

describe("Supervisor", () => {
  it.effect("re-acquires a lost resource on the schedule, releases the old one, and counts generations", () =>
    Effect.gen(function*() {
      const log = yield* Ref.make<ReadonlyArray<string>>([])
      const note = (line: string) => Ref.update(log, (all) => [...all, line])
      const closers: Array<Deferred.Deferred<void>> = []
      let made = 0
      const supervised = yield* Supervisor.make({
        acquire: Effect.acquireRelease(
          Effect.gen(function*() {
            made += 1
            const closed = yield* Deferred.make<void>()
            closers.push(closed)
            return { id: made, closed }
          }),
          (client) => note(`release ${client.id}`)
        ),
        lost: (client) => Deferred.await(client.closed),
        schedule: Schedule.spaced("100 millis"),
        stableAfter: "0 millis",
        onReacquired: (client, generation) => note(`reacquired ${client.id} as generation ${generation}`)
      })
      const generations = yield* Effect.forkChild(Stream.runCollect(Stream.take(supervised.generations, 3)))
      yield* TestKit.settle()
      yield* Deferred.succeed(closers[0]!, undefined)
      yield* TestKit.advance("50 millis")
      yield* Deferred.succeed(closers[1]!, undefined)
      yield* TestKit.advance("50 millis")
      assert.strictEqual((yield* supervised.current).id, 3)
      assert.strictEqual(yield* supervised.generation, 3)
      assert.deepStrictEqual(Array.from(yield* Fiber.join(generations)), [1, 2, 3])
      assert.deepStrictEqual(yield* Ref.get(log), ["release 1", "reacquired 2 as generation 2", "release 2", "reacquired 3 as generation 3"])
    }))

  // a resource whose loss is triggered by the test; `acquired` counts acquisitions
  const flapping = Effect.fnUntraced(function*(schedule: Schedule.Schedule<unknown, unknown>) {
    const closers: Array<Deferred.Deferred<void>> = []
    const supervised = yield* Supervisor.make({
      acquire: Effect.map(Deferred.make<void>(), (closed) => closers.push(closed)),
      lost: (n: number) => Deferred.await(closers[n - 1]!),
      schedule,
      stableAfter: "5 seconds"
    })
    const lose = Effect.suspend(() => Deferred.succeed(closers[closers.length - 1]!, undefined)).pipe(Effect.andThen(TestKit.settle()))
    return { supervised, lose, acquired: () => closers.length }
  })

  it.effect("a resource lost before `stableAfter` is re-acquired after the schedule's next delay, not at once", () =>
    Effect.gen(function*() {
      const { acquired, lose } = yield* flapping(Schedule.exponential("100 millis"))
      yield* TestKit.settle()
      const waits: Array<number> = []
      for (let round = 0; round < 4; round++) {
        const before = acquired()
        yield* lose
        let waited = 0
        while (acquired() === before && waited < 10_000) {
          yield* TestKit.advance("10 millis", "10 millis")
          waited += 10
        }
        waits.push(waited)
      }
      // exponential from 100 ms: each early loss waits the next, longer step
      assert.deepStrictEqual(waits, [100, 200, 400, 800])
    }))

  it.effect("a resource that lived `stableAfter` is re-acquired at once, and the schedule starts afresh", () =>
    Effect.gen(function*() {
      const { acquired, lose } = yield* flapping(Schedule.exponential("100 millis"))
      yield* TestKit.settle()
      yield* lose
      yield* TestKit.advance("100 millis")
      yield* lose
      yield* TestKit.advance("200 millis")
      assert.strictEqual(acquired(), 3)
      yield* TestKit.advance("5 seconds", "1 second")
      yield* lose
      assert.strictEqual(acquired(), 4, "a stable resource is re-acquired without a pause")
      yield* lose
      yield* TestKit.advance("90 millis")
      assert.strictEqual(acquired(), 4)
      yield* TestKit.advance("10 millis")
      assert.strictEqual(acquired(), 5, "the schedule restarted from its first delay")
    }))

  it.effect("a schedule that ends on early losses starts afresh with an immediate attempt; the supervisor stays up", () =>
    Effect.gen(function*() {
      const { acquired, lose, supervised } = yield* flapping(Schedule.spaced("1 second").pipe(Schedule.upTo({ times: 1 })))
      yield* TestKit.settle()
      yield* lose
      yield* TestKit.advance("1 second", "100 millis")
      assert.strictEqual(acquired(), 2)
      yield* lose
      assert.strictEqual(acquired(), 3, "the schedule had ended: attempt at once, with a fresh schedule")
      yield* lose
      assert.strictEqual(acquired(), 3)
      yield* TestKit.advance("1 second", "100 millis")
      assert.strictEqual(acquired(), 4)
      assert.isTrue(Option.isNone(yield* Deferred.poll(supervised.failure)))
    }))

  it.effect("fails its `failure` with the last error when the schedule gives up", () =>
    Effect.gen(function*() {
      const lost = yield* Deferred.make<void>()
      let attempts = 0
      const supervised = yield* Supervisor.make({
        acquire: Effect.suspend(() => ++attempts === 1 ? Effect.succeed("first") : Effect.fail(`refused ${attempts}`)),
        lost: () => Deferred.await(lost),
        schedule: Schedule.recurs(2),
        stableAfter: "0 millis"
      })
      yield* Deferred.succeed(lost, undefined)
      yield* TestKit.settle()
      assert.strictEqual(yield* Effect.flip(Deferred.await(supervised.failure)), "refused 4")
    }))

  it.effect("fails at once when the first acquisition fails", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Supervisor.make({ acquire: Effect.fail("unreachable"), lost: () => Effect.never, schedule: Schedule.forever }))
      assert.strictEqual(error, "unreachable")
    }))
})

describe("BrokerErrors", () => {
  it("keeps the client's message and code, and the classifier's tag", () => {
    const reasonOf = BrokerErrors.classifier((error) => BrokerErrors.codeOf(error) === 406 ? "TopologyConflict" : "Unknown")
    const reason = reasonOf(Object.assign(new Error("PRECONDITION_FAILED - inequivalent arg 'durable'"), { code: 406 }))
    assert.strictEqual(reason._tag, "TopologyConflict")
    assert.strictEqual(reason.code, 406)
    assert.include(reason.message, "inequivalent arg")
    assert.isFalse(reason.isRetryable)
    const unknown = reasonOf("something odd")
    assert.strictEqual(unknown._tag, "Unknown")
    assert.isTrue(unknown.isRetryable)
    assert.isUndefined(unknown.code)
  })

  it("every kind builds its own reason class, retryable exactly for the transient ones", () => {
    const kinds = ["Unreachable", "Timeout", "BrokerClosed", "AuthenticationFailed", "AuthorizationFailed", "TopologyConflict", "NotFound", "Unroutable", "TooLarge", "Invalid", "Unknown"] as const
    for (const kind of kinds) {
      const error = new Errors.PublishError({ destination: "d", reason: Errors.reason(kind, "text") })
      assert.strictEqual(error.kind, kind)
      assert.strictEqual(error.isRetryable, Errors.isRetryableKind(kind))
      assert.strictEqual(error.message, `publish to "d" failed: text`)
    }
  })
})

describe("TestKit.eventually", () => {
  it.live("returns the first value that satisfies the condition, or the last one seen", () =>
    Effect.gen(function*() {
      let n = 0
      assert.strictEqual(yield* TestKit.eventually(Effect.sync(() => ++n), (x) => x >= 5, { within: "2 seconds", interval: "1 millis" }), 5)
      assert.strictEqual(yield* TestKit.eventually(Effect.succeed(1), (x) => x >= 5, { within: "30 millis", interval: "5 millis" }), 1)
    }))

  it("uniqueName makes distinct broker-safe names", () => {
    const names = new Set(Array.from({ length: 1000 }, () => TestKit.uniqueName("sy-test.orders")))
    assert.strictEqual(names.size, 1000)
    for (const name of names) assert.match(name, /^sy-test\.orders\.[a-z0-9]{10}$/)
  })
})

describe("ConnectionOptions", () => {
  it.effect("a bad configuration fails with a ConnectionError of reason Invalid on every adapter", () =>
    Effect.gen(function*() {
      const error = yield* ConnectionOptions.fromConfig<{ readonly port: number }>("rabbitmq", { port: Config.Port("SY_TEST_PORT") }).pipe(
        Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown({ SY_TEST_PORT: "not a port" })),
        Effect.flip
      )
      assert.strictEqual(error._tag, "ConnectionError")
      assert.strictEqual(error.kind, "Invalid")
      assert.isFalse(error.isRetryable)
      assert.include(error.message, "SY_TEST_PORT")
    }))

  it.effect("reads the common options under a prefix, the password redacted", () =>
    Effect.gen(function*() {
      const common = yield* ConnectionOptions.commonConfig("SY").pipe(
        Effect.provideService(
          ConfigProvider.ConfigProvider,
          ConfigProvider.fromUnknown({ SY_CONNECT_TIMEOUT: "3 seconds", SY_USERNAME: "app", SY_PASSWORD: "s3cret", SY_TLS: "true" })
        )
      )
      assert.strictEqual(ConnectionOptions.connectTimeoutMillis(common), 3000)
      assert.strictEqual(common.username, "app")
      assert.isTrue(Redacted.isRedacted(common.password))
      assert.notInclude(String(common.password), "s3cret")
      assert.deepStrictEqual(ConnectionOptions.nodeTls(common.tls), {})
    }))

  it("unwraps TLS secrets only for the client", () => {
    assert.deepStrictEqual(ConnectionOptions.nodeTls({ ca: "CA", key: Redacted.make("KEY"), rejectUnauthorized: false }), { ca: "CA", key: "KEY", rejectUnauthorized: false })
    assert.isUndefined(ConnectionOptions.nodeTls(false))
  })
})
