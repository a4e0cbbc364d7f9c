/**
 * SIGKILL of one of two consumer processes (`fixtures/worker.ts` under tsx) with nothing lost: the killed
 * process held its prefetch unacknowledged, and while it lived its heartbeat kept those messages invisible to
 * the other one (for longer than twice the visibility timeout); once it is killed, its messages come back
 * after the visibility timeout and the survivor gets every one, with a grown `ApproximateReceiveCount`, and
 * the queue ends empty.
 */
import * as Path from "node:path"
import { assert, layer } from "@effect/vitest"
import { GetQueueAttributesCommand } from "@aws-sdk/client-sqs"
import { Broker, Envelope } from "@switchyard/core"
import { Clock, Effect, Schedule } from "effect"
import { SqsTopology } from "../src/index.ts"
import { spawnMember, waitUntil } from "../../../test/support/workerProcess.ts"
import { brokerOn, TestServer, unique } from "./helpers.ts"

const destination = unique("sigkill")
const visibilitySeconds = 3
const total = 100
const held = 20

const worker = Path.join(import.meta.dirname, "fixtures", "worker.ts")

const startWorker = (endpoint: string, mode: "ack" | "hold", prefetch: number) =>
  spawnMember(worker, {
    ENDPOINT: endpoint,
    DESTINATION: destination,
    MODE: mode,
    PREFETCH: String(prefetch),
    VISIBILITY: String(visibilitySeconds)
  })

const brokerLayer = brokerOn({
  waitTime: "1 second",
  queues: { [destination]: { visibilityTimeout: `${visibilitySeconds} seconds` } }
})

layer(brokerLayer, { excludeTestServices: true, timeout: "2 minutes" })("sqs: consumer processes", (it) => {
  it.effect("SIGKILL of a process holding its prefetch: the survivor gets its messages once they are visible again, nothing is lost", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const topology = yield* SqsTopology.SqsTopology
      const { endpoint, raw } = yield* TestServer
      const { url } = yield* topology.queue(destination)
      const depth = Effect.promise(() =>
        raw.send(
          new GetQueueAttributesCommand({
            QueueUrl: url,
            AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
          })
        )
      ).pipe(Effect.map((r) =>
        Number(r.Attributes?.ApproximateNumberOfMessages ?? Number.NaN) +
        Number(r.Attributes?.ApproximateNumberOfMessagesNotVisible ?? Number.NaN)
      ))

      const holder = yield* startWorker(endpoint, "hold", held)
      yield* waitUntil(() => holder.ready(), "30 seconds", "the holder subscribed")
      const ids = Array.from({ length: total }, (_, i) => `m-${i}`)
      yield* broker.publish(destination, ids.map((id) => Envelope.outgoing(new TextEncoder().encode(id), { id })))
      yield* waitUntil(() => holder.got.size >= held, "20 seconds", `the holder got ${held} messages`)
      const heldSince = yield* Clock.currentTimeMillis

      const survivor = yield* startWorker(endpoint, "ack", 10)
      yield* waitUntil(() => survivor.acked.size >= total - held, "30 seconds", `the survivor acked ${total - held} messages`)
      // the holder keeps its messages past two visibility timeouts: only its heartbeat can keep them invisible
      const heldFor = (yield* Clock.currentTimeMillis) - heldSince
      yield* Effect.sleep(Math.max(0, 2 * visibilitySeconds * 1000 + 1000 - heldFor))
      const heldIds = [...holder.got.keys()]
      assert.strictEqual(heldIds.length, held, "the holder took exactly its prefetch")
      assert.deepStrictEqual([...holder.got.values()].filter((attempts) => attempts.length !== 1), [], "the holder got a message twice")
      assert.deepStrictEqual(heldIds.filter((id) => survivor.got.has(id)), [], "the survivor got messages the live holder held")
      assert.strictEqual(survivor.acked.size, total - held, "the survivor got more than what the holder did not hold")

      holder.process.kill("SIGKILL")
      yield* waitUntil(() => ids.every((id) => survivor.acked.has(id)), "30 seconds", "the survivor acked every message")
      assert.strictEqual(survivor.acked.size, total)
      for (const id of heldIds) {
        const attempts = survivor.got.get(id) ?? []
        assert.isAtLeast(attempts[0] ?? 0, 2, `${id} came back without a grown ApproximateReceiveCount`)
      }
      // acks are batched deletes sent after `acked` is printed: the queue empties shortly after
      yield* depth.pipe(
        Effect.repeat({ schedule: Schedule.spaced("200 millis"), until: (n) => n === 0 }),
        Effect.timeoutOrElse({ duration: "10 seconds", orElse: () => Effect.void })
      )
      assert.strictEqual(yield* depth, 0, "messages left in the queue (visible + not visible)")
    }), { timeout: 60_000 })
})
