/**
 * The consumer runloop without a broker: commands are folded one at a time over the state, as the
 * subscription's fiber does, against a fake consumer that records pause / resume.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Deferred, Effect, Option, Queue, Ref, Stream } from "effect"
import type { Errors } from "@switchyard/core"
import { DeliveryQueue } from "@switchyard/core/adapter"
import type { KafkaMessage } from "kafkajs"
import type { KafkaDelivery } from "../src/internal/delivery.ts"
import * as Runloop from "../src/internal/runloop.ts"

const record = (offset: number): KafkaMessage => ({
  key: Buffer.from(`k${offset}`),
  value: Buffer.from(`v${offset}`),
  timestamp: "1700000000000",
  attributes: 0,
  offset: String(offset),
  headers: { "x-switchyard-id": `m-${offset}` }
})

/** A runloop driven by hand: `send` folds one command, then every command it caused (settlements, inherit). */
const harness = (prefetch: number, inherited: ReadonlyMap<number, ReadonlySet<number>> = new Map()) =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const commands = yield* Queue.unbounded<Runloop.Command>()
    const state = yield* Ref.make(Runloop.initial)
    const calls: Array<string> = []
    const shared = yield* DeliveryQueue.make<KafkaDelivery>({ capacity: 100 })
    const rebalances = yield* Queue.sliding<Runloop.RebalanceEvent, Errors.SubscribeError | Cause.Done>(16)
    const joined = yield* Deferred.make<void>()
    const commits = yield* Ref.make(0)
    const fake = {
      pause: (topics: ReadonlyArray<{ readonly partitions?: ReadonlyArray<number> }>) => {
        calls.push(`pause ${topics[0]?.partitions?.join(",")}`)
      },
      resume: (topics: ReadonlyArray<{ readonly partitions?: ReadonlyArray<number> }>) => {
        calls.push(`resume ${topics[0]?.partitions?.join(",")}`)
      }
    }
    const env: Runloop.Env = {
      destination: "t",
      prefetch,
      commitEvery: 3,
      commands,
      shared,
      partitioned: undefined,
      rebalances,
      consumer: Effect.succeed(Option.some(fake)),
      inherit: () => Effect.succeed(inherited),
      commitSoon: Ref.update(commits, (n) => n + 1),
      joined,
      handlers: {
        settle: (partition, epoch, pending, outcome) =>
          Queue.offer(commands, { _tag: "Settled", partition, epoch, pending, outcome }).pipe(Effect.asVoid),
        isLive: (partition, epoch) => Ref.getUnsafe(state).partitions.get(partition)?.epoch === epoch
      },
      scope
    }
    const fold = (command: Runloop.Command) =>
      Ref.get(state).pipe(Effect.flatMap((s) => Runloop.step(env, s, command)), Effect.flatMap((s) => Ref.set(state, s)))
    /** Folds whatever was enqueued (settlements, the forked inherit's answer) until the queue stays empty. */
    const flush: Effect.Effect<void> = Effect.yieldNow.pipe(
      Effect.andThen(Effect.yieldNow),
      Effect.andThen(Queue.poll(commands)),
      Effect.flatMap((next) => (Option.isSome(next) ? Effect.andThen(fold(next.value), flush) : Effect.void))
    )
    /** Folds `command`, then flushes. */
    const send = (command: Runloop.Command): Effect.Effect<void> => Effect.andThen(fold(command), flush)
    const taken = (n: number) => shared.stream.pipe(Stream.take(n), Stream.runCollect)
    const fetched = (partition: number, offsets: ReadonlyArray<number>) =>
      send({ _tag: "Fetched", partition, messages: offsets.map(record), highWatermark: 100, done: () => undefined })
    /** Folds everything enqueued so far in ONE turn (`stepAll`), as the subscription's fiber does. */
    const turn = Effect.gen(function*() {
      yield* Effect.yieldNow
      const all = yield* Queue.clear(commands)
      yield* Ref.get(state).pipe(Effect.flatMap((s) => Runloop.stepAll(env, s, all, (next) => Ref.set(state, next))))
      return all.length
    })
    return { state, calls, shared, send, flush, taken, fetched, commits, joined, turn }
  })

describe("kafka runloop", () => {
  it.effect("a partition hands out at most prefetch, is paused while anything is buffered, and resumes when the buffer empties", () =>
    Effect.gen(function*() {
      const h = yield* harness(2)
      yield* h.send({ _tag: "Assigned", partitions: [0] })
      yield* h.fetched(0, [0, 1, 2, 3, 4])
      assert.strictEqual(h.shared.size(), 2)
      assert.deepStrictEqual(h.calls, ["pause 0"])
      const first = yield* h.taken(2)
      assert.deepStrictEqual(first.map((d) => d.envelope.coordinates.offset), ["0", "1"])
      yield* first[1]!.ack
      yield* h.flush
      assert.strictEqual(h.shared.size(), 1, "one more after one ack")
      const second = yield* h.taken(1)
      yield* Effect.forEach([first[0]!, second[0]!], (d) => d.ack)
      yield* h.send({ _tag: "FetchCompleted" })
      const rest = yield* h.taken(2)
      assert.deepStrictEqual(rest.map((d) => d.envelope.coordinates.offset), ["3", "4"])
      assert.deepStrictEqual(h.calls, ["pause 0", "resume 0"])
      // acked 0, 1, 2: the commit is 3, asked for early after commitEvery (3) acks
      assert.deepStrictEqual(Runloop.commitsOf(yield* Ref.get(h.state)).map((c) => c.offset), [3])
      assert.strictEqual(yield* Ref.get(h.commits), 1)
      assert.isTrue(yield* Deferred.isDone(h.joined), "joined after the first fetch")
    }))

  it.effect("one turn of many settlements: acks and a nack folded at once, the partitions pumped once, one early commit", () =>
    Effect.gen(function*() {
      const h = yield* harness(4)
      yield* h.send({ _tag: "Assigned", partitions: [0, 1] })
      yield* h.fetched(0, [0, 1, 2, 3, 4, 5, 6])
      yield* h.fetched(1, [10, 11])
      const first = yield* h.taken(6)
      const offsetsOf = (ds: ReadonlyArray<KafkaDelivery>) => ds.map((d) => `${d.partition}:${d.envelope.coordinates.offset}`)
      assert.deepStrictEqual(offsetsOf(first), ["0:0", "0:1", "0:2", "0:3", "1:10", "1:11"])
      // out of order, with a nack in the middle and an ack of the other partition
      yield* Effect.forEach([first[2]!, first[0]!, first[4]!, first[1]!], (d) => d.ack)
      yield* first[3]!.nack()
      yield* first[5]!.ack
      assert.strictEqual(yield* h.turn, 6)
      const state = yield* Ref.get(h.state)
      assert.deepStrictEqual(Runloop.commitsOf(state).map((c) => [c.partition, c.offset]), [[0, 3], [1, 12]])
      assert.strictEqual(yield* Ref.get(h.commits), 1, "one early commit for the turn's 5 acks")
      // partition 0: the nacked 3 first, then 4, 5, 6 (4 handed out at most)
      const next = yield* h.taken(4)
      assert.deepStrictEqual(offsetsOf(next), ["0:3", "0:4", "0:5", "0:6"])
      assert.strictEqual(next[0]!.envelope.attempt, 2)
      assert.strictEqual(Runloop.inFlight(yield* Ref.get(h.state)), 4)
      assert.deepStrictEqual(h.calls, ["pause 0", "resume 0"])
    }))

  it.effect("records fetched again are not delivered twice; offsets the previous owner acked are skipped and count as acked", () =>
    Effect.gen(function*() {
      const h = yield* harness(10, new Map([[0, new Set([1, 2])]]))
      yield* h.send({ _tag: "Assigned", partitions: [0] })
      yield* h.fetched(0, [0, 1, 2, 3])
      yield* h.fetched(0, [2, 3, 4])
      const got = yield* h.taken(3)
      assert.deepStrictEqual(got.map((d) => d.envelope.coordinates.offset), ["0", "3", "4"])
      yield* got[0]!.ack
      yield* h.flush
      const [commit] = Runloop.commitsOf(yield* Ref.get(h.state))
      assert.strictEqual(commit?.offset, 3, "0 acked here, 1 and 2 by the previous owner")
    }))

  it.effect("nack redelivers with attempt + 1 and the commit waits for it; after a revoke a settlement fails with BrokerClosed", () =>
    Effect.gen(function*() {
      const h = yield* harness(10)
      yield* h.send({ _tag: "Assigned", partitions: [0, 1] })
      yield* h.fetched(0, [0, 1])
      const [d0, d1] = yield* h.taken(2)
      yield* d1!.ack
      yield* d0!.nack()
      yield* h.flush
      const [again] = yield* h.taken(1)
      assert.strictEqual(again!.envelope.coordinates.offset, "0")
      assert.strictEqual(again!.envelope.attempt, 2)
      assert.deepStrictEqual(Runloop.commitsOf(yield* Ref.get(h.state)).map((c) => c.offset), [0])
      yield* d0!.ack // settled already (by the nack): nothing happens
      yield* h.send({ _tag: "Assigned", partitions: [1] })
      const error = yield* Effect.flip(again!.ack)
      assert.strictEqual(error.kind, "BrokerClosed")
      assert.deepStrictEqual([...(yield* Ref.get(h.state)).partitions.keys()], [1])
    }))

  it.effect("stop intake: everything paused, what no reader took is taken back; the drain completes once the taken ones settle", () =>
    Effect.gen(function*() {
      const h = yield* harness(5)
      yield* h.send({ _tag: "Assigned", partitions: [0, 1] })
      yield* h.fetched(0, [0, 1, 2, 3, 4, 5, 6])
      // (a reader pulls what the queue holds in one chunk: take all of partition 0's five)
      const out = yield* h.taken(5)
      yield* h.fetched(1, [0, 1, 2])
      assert.strictEqual(h.shared.size(), 3)
      yield* h.send({ _tag: "Readers", delta: 1 })
      yield* h.send({ _tag: "StopIntake" })
      assert.strictEqual(h.shared.size(), 0, "partition 1's three are taken back")
      assert.deepStrictEqual(h.calls, ["pause 0", "pause 1"])
      const drained = yield* Deferred.make<void>()
      yield* h.send({ _tag: "Stop", drained })
      yield* Effect.forEach(out.slice(1), (d) => d.ack)
      yield* h.flush
      assert.isFalse(yield* Deferred.isDone(drained), "one delivery still out")
      yield* out[0]!.ack
      yield* h.flush
      assert.isTrue(yield* Deferred.isDone(drained))
      assert.deepStrictEqual(Runloop.commitsOf(yield* Ref.get(h.state)).map((c) => [c.partition, c.offset]), [[0, 5]])
      yield* h.fetched(0, [7])
      assert.strictEqual(h.shared.size(), 0, "nothing is handed out after the stop")
    }))

  it.effect("the drain does not wait when nobody reads", () =>
    Effect.gen(function*() {
      const h = yield* harness(5)
      yield* h.send({ _tag: "Assigned", partitions: [0] })
      yield* h.fetched(0, [0, 1])
      yield* h.taken(2)
      const drained = yield* Deferred.make<void>()
      yield* h.send({ _tag: "Stop", drained })
      assert.isTrue(yield* Deferred.isDone(drained), "readers 0: nobody can settle what is out")
    }))
})
