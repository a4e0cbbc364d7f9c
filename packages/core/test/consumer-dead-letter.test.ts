import { assert, describe, it } from "@effect/vitest"
import { Cause, Duration, Effect } from "effect"
import type { BrokerShape } from "../src/Broker.ts"
import type { OutgoingMessage } from "../src/Envelope.ts"
import { Errors, MemoryBroker } from "../src/index.ts"
import * as H from "../src/Headers.ts"
import { failureOf, make, parkedAgain } from "../src/internal/consumer/deadLetter.ts"
import type { DeadLetterConfig } from "../src/internal/consumer/options.ts"
import { Outcome } from "../src/internal/consumer/outcome.ts"
import * as Fake from "./helpers/fakeDelivery.ts"

const failure = { reason: "card declined", errorTag: "PaymentFailed", attempts: 2 }
const config: DeadLetterConfig = { destination: "orders.dlq", retryDelay: Duration.seconds(3) }

/** A broker whose publish runs `refuse` first (a failure stops the publish), recording every call. */
const recording = (refuse: (message: OutgoingMessage, call: number) => Errors.PublishError | undefined = () => undefined) => {
  const { broker, inspect } = MemoryBroker.make({ partitions: 1 })
  const calls: Array<OutgoingMessage> = []
  const publish: BrokerShape["publish"] = (destination, messages) =>
    Effect.suspend(() => {
      calls.push(...messages)
      const refused = refuse(messages[0]!, calls.length)
      return refused === undefined ? broker.publish(destination, messages) : Effect.fail(refused)
    })
  return { broker: { publish }, inspect, calls }
}

const remembering = () => {
  const remembered: Array<string> = []
  return { remembered, remember: (d: { readonly envelope: { readonly id: string } }) => Effect.sync(() => void remembered.push(d.envelope.id)) }
}

const tooLarge = (destination: string) => new Errors.PublishError({ destination, reason: Errors.reason("TooLarge", "message too large") })
const unreachable = (destination: string) => new Errors.PublishError({ destination, reason: Errors.reason("Unreachable", "connection refused") })

describe("consumer stage: dead letter", () => {
  it.effect("parks the delivery in the destination with the reason headers, remembers it, then acks", () =>
    Effect.gen(function*() {
      const { broker, inspect } = recording()
      const { remember, remembered } = remembering()
      const fake = Fake.decoded(1, { envelope: { id: "m-7", headers: { "x-trace": "t" } } })
      const outcome = yield* make<number>(config, { broker, group: "billing", remember })(fake.delivery, failure)
      assert.deepStrictEqual(outcome, Outcome.DeadLettered({ destination: "orders.dlq", form: "full", failure }))
      assert.deepStrictEqual(fake.settlements, [{ _tag: "ack" }])
      assert.deepStrictEqual(remembered, ["m-7"])
      const [letter, ...more] = yield* inspect.published("orders.dlq")
      assert.strictEqual(more.length, 0)
      assert.strictEqual(letter!.id, "m-7.dlq.billing")
      assert.strictEqual(letter!.headers[H.deadLetterReason], "card declined")
      assert.strictEqual(letter!.headers[H.deadLetterErrorTag], "PaymentFailed")
      assert.strictEqual(letter!.headers[H.deadLetterAttempts], "2")
      assert.strictEqual(letter!.headers[H.deadLetterOriginGroup], "billing")
      assert.strictEqual(letter!.headers["x-trace"], "t")
    }))

  it.effect("a refusal for good falls back to the headers-omitted, then the payload-omitted form", () =>
    Effect.gen(function*() {
      const { broker, calls, inspect } = recording((_message, call) => call <= 2 ? tooLarge("orders.dlq") : undefined)
      const { remember } = remembering()
      const fake = Fake.decoded(1)
      const outcome = yield* make<number>(config, { broker, group: "g", remember })(fake.delivery, failure)
      assert.strictEqual(outcome._tag === "DeadLettered" ? outcome.form : undefined, "payload-omitted")
      assert.strictEqual(calls.length, 3)
      assert.strictEqual(calls[1]!.headers[H.deadLetterHeadersOmitted], "0")
      assert.strictEqual(calls[2]!.payload.length, 0)
      assert.strictEqual((yield* inspect.published("orders.dlq"))[0]!.headers[H.deadLetterPayloadOmitted], "true")
      assert.deepStrictEqual(fake.settlements, [{ _tag: "ack" }])
    }))

  it.effect("not parked (retryable failure, or every form refused): nacked with the retry delay, never acked nor remembered", () =>
    Effect.gen(function*() {
      const down = recording(() => unreachable("orders.dlq"))
      const { remember, remembered } = remembering()
      const fake = Fake.decoded(1)
      const outcome = yield* make<number>(config, { broker: down.broker, group: "g", remember })(fake.delivery, failure)
      assert.strictEqual(outcome._tag, "Nacked")
      if (outcome._tag === "Nacked") assert.strictEqual(outcome.error?.kind, "Unreachable")
      assert.strictEqual(down.calls.length, 1, "a retryable failure was retried in reduced forms")
      assert.deepStrictEqual(fake.settlements, [{ _tag: "nack", options: { delay: Duration.seconds(3) } }])

      const refusing = recording(() => tooLarge("orders.dlq"))
      const refused = Fake.decoded(1)
      const last = yield* make<number>(config, { broker: refusing.broker, group: "g", remember })(refused.delivery, failure)
      assert.strictEqual(last._tag === "Nacked" ? last.error?.kind : undefined, "TooLarge")
      assert.strictEqual(refusing.calls.length, 3)
      assert.deepStrictEqual(refused.settlements, [{ _tag: "nack", options: { delay: Duration.seconds(3) } }])
      assert.deepStrictEqual(remembered, [])
    }))

  it.effect("dead-lettering off: nacked without a delay, nothing published", () =>
    Effect.gen(function*() {
      const { broker, calls } = recording()
      const fake = Fake.decoded(1)
      const outcome = yield* make<number>({ ...config, destination: false }, { broker, group: "g", remember: () => Effect.void })(fake.delivery, failure)
      assert.deepStrictEqual(outcome, Outcome.Nacked({ failure, error: undefined }))
      assert.deepStrictEqual(fake.settlements, [{ _tag: "nack", options: undefined }])
      assert.strictEqual(calls.length, 0)
    }))

  it.effect("a failing ack after parking is logged, not raised: the outcome stays DeadLettered", () =>
    Effect.gen(function*() {
      const { broker } = recording()
      const fake = Fake.decoded(1, { failSettlements: true })
      const outcome = yield* make<number>(config, { broker, group: "g", remember: () => Effect.void })(fake.delivery, failure)
      assert.strictEqual(outcome._tag, "DeadLettered")
      assert.deepStrictEqual(fake.settlements, [{ _tag: "ack" }])
    }))

  it("parkedAgain: a redriven copy's dead letter drops the redrive group and gets a dedup id of its own", () => {
    const message: OutgoingMessage = {
      id: "a.dlq.g",
      key: undefined,
      headers: { [H.redriveGroup]: "g", "x-keep": "1" },
      timestamp: 1,
      contentType: "application/json",
      payload: new Uint8Array(0),
      correlationId: undefined,
      causationId: undefined
    }
    const plain = Fake.envelope()
    assert.strictEqual(parkedAgain(plain, message), message)
    const copy = Fake.envelope({ headers: { [H.redriveGroup]: "g", [H.redrivenAt]: "99" } })
    const again = parkedAgain(copy, message)
    assert.deepStrictEqual(again.headers, { "x-keep": "1" })
    assert.strictEqual(again.dedupId, "a.dlq.g.redriven.99")
  })

  it("failureOf: a typed error by its tag and message, a defect as Defect", () => {
    const typed = failureOf(Cause.fail(new Errors.HandlerTimeoutError({ destination: "orders", timeoutMillis: 5 })), 3)
    assert.deepStrictEqual(typed, { reason: `handler for "orders" did not finish within 5ms`, errorTag: "HandlerTimeoutError", attempts: 3 })
    const defect = failureOf(Cause.die(new Error("bug")), 1)
    assert.deepStrictEqual(defect, { reason: "handler defect: bug", errorTag: "Defect", attempts: 1 })
  })
})
