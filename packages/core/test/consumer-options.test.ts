import { assert, describe, it } from "@effect/vitest"
import { Duration, Schedule } from "effect"
import { Capabilities, Consumer } from "../src/index.ts"
import { resolve } from "../src/internal/consumer/options.ts"
import { label, Outcome } from "../src/internal/consumer/outcome.ts"

const acked = { capabilities: Capabilities.none }
const atMostOnce = { capabilities: { ...Capabilities.none, atMostOnce: true } }

describe("consumer options", () => {
  it("the defaults, one group per concern", () => {
    const config = resolve("orders", {}, acked)
    assert.deepStrictEqual(config.subscription, { destination: "orders", group: "default", prefetch: 16, startFrom: undefined })
    assert.deepStrictEqual(config.lanes, { concurrency: 1, ordering: "key", bufferSize: 16 })
    assert.isUndefined(config.retry.schedule)
    assert.isUndefined(config.retry.handlerTimeout)
    assert.strictEqual(config.retry.isRetryable, Consumer.defaultIsRetryable)
    assert.deepStrictEqual(config.deadLetter, { destination: "orders.dlq", retryDelay: Duration.seconds(1) })
    assert.deepStrictEqual(config.decode, { onFailure: "dead-letter", onUnknownType: "dead-letter" })
    assert.isUndefined(config.idempotency)
    assert.isUndefined(config.restart)
    assert.deepStrictEqual(config.drain, { timeout: Duration.seconds(30) })
    assert.deepStrictEqual(config.tracing, { context: "parent" })
  })

  it("prefetch: max(16, 4 × concurrency), at least the at-most-once bound on such brokers, or as given", () => {
    assert.strictEqual(resolve("o", { concurrency: 8 }, acked).subscription.prefetch, 32)
    assert.strictEqual(resolve("o", { concurrency: 0 }, acked).lanes.concurrency, 1)
    assert.strictEqual(resolve("o", {}, atMostOnce).subscription.prefetch, 8192)
    assert.strictEqual(resolve("o", { prefetch: 5, concurrency: 8 }, atMostOnce).subscription.prefetch, 5)
    assert.strictEqual(resolve("o", { prefetch: 5 }, acked).lanes.bufferSize, 5)
  })

  it("retry as a bare Schedule keeps the default isRetryable; deadLetter as a name, false or an object", () => {
    const schedule = Schedule.recurs(2)
    const bare = resolve<string>("o", { retry: schedule }, acked)
    assert.strictEqual(bare.retry.schedule, schedule)
    assert.strictEqual(bare.retry.isRetryable, Consumer.defaultIsRetryable)
    const predicateOnly = resolve<string>("o", { retry: { isRetryable: () => false } }, acked)
    assert.isUndefined(predicateOnly.retry.schedule)
    assert.isFalse(predicateOnly.retry.isRetryable("x"))
    assert.deepStrictEqual(resolve("o", { deadLetter: "parked" }, acked).deadLetter, { destination: "parked", retryDelay: Duration.seconds(1) })
    assert.deepStrictEqual(resolve("o", { deadLetter: false }, acked).deadLetter, { destination: false, retryDelay: Duration.seconds(1) })
    assert.deepStrictEqual(resolve("o", { deadLetter: { retryDelay: "3 seconds" } }, acked).deadLetter, { destination: "o.dlq", retryDelay: Duration.seconds(3) })
    assert.deepStrictEqual(resolve("o", { decode: { onFailure: "skip" } }, acked).decode, { onFailure: "skip", onUnknownType: "dead-letter" })
  })

  it("every option lands in its group", () => {
    const retry = Schedule.recurs(3)
    const restart = Schedule.spaced("1 second")
    const isRetryable = () => false
    const config = resolve<string>("orders", {
      group: "billing",
      concurrency: 4,
      ordering: "partition",
      startFrom: "latest",
      retry: { schedule: retry, isRetryable },
      handlerTimeout: "2 seconds",
      drainTimeout: "5 seconds",
      deadLetter: { destination: "parked", retryDelay: "10 seconds" },
      decode: { onFailure: "skip", onUnknownType: "ignore" },
      idempotency: { keyPrefix: "p:" },
      restart,
      traceContext: "link"
    }, acked)
    assert.deepStrictEqual(config.subscription, { destination: "orders", group: "billing", prefetch: 16, startFrom: "latest" })
    assert.deepStrictEqual(config.lanes, { concurrency: 4, ordering: "partition", bufferSize: 16 })
    assert.strictEqual(config.retry.schedule, retry)
    assert.strictEqual(config.retry.isRetryable, isRetryable)
    assert.deepStrictEqual(config.retry.handlerTimeout, Duration.seconds(2))
    assert.deepStrictEqual(config.deadLetter, { destination: "parked", retryDelay: Duration.seconds(10) })
    assert.deepStrictEqual(config.decode, { onFailure: "skip", onUnknownType: "ignore" })
    assert.deepStrictEqual(config.idempotency, { keyPrefix: "p:" })
    assert.strictEqual(config.restart, restart)
    assert.deepStrictEqual(config.drain, { timeout: Duration.seconds(5) })
    assert.deepStrictEqual(config.tracing, { context: "link" })
  })

  it("idempotency: true is the default ledger, false and undefined are off; deadLetter false stays false", () => {
    assert.deepStrictEqual(resolve("o", { idempotency: true }, acked).idempotency, {})
    assert.isUndefined(resolve("o", { idempotency: false }, acked).idempotency)
    assert.isFalse(resolve("o", { deadLetter: false }, acked).deadLetter.destination)
  })
})

describe("consumer outcome", () => {
  it("labels, as the switchyard.outcome span attribute shows them", () => {
    const failure = { reason: "r", errorTag: "E", attempts: 1 }
    assert.deepStrictEqual(
      [
        Outcome.Handled(),
        Outcome.Duplicate(),
        Outcome.DeadLettered({ destination: "d", form: "full", failure }),
        Outcome.Nacked({ failure, error: undefined }),
        Outcome.Ignored({ reason: "unknown-type" })
      ].map(label),
      ["handled", "duplicate", "dead-lettered", "nacked", "ignored"]
    )
    assert.strictEqual(Consumer.outcomeLabel(Consumer.Outcome.Handled()), "handled")
  })

  it("$match reaches every variant", () => {
    const describe = (outcome: Consumer.Outcome) =>
      Consumer.Outcome.$match(outcome, {
        Handled: () => "h",
        Duplicate: () => "d",
        DeadLettered: ({ form }) => form,
        Nacked: ({ error }) => error === undefined ? "n" : "n!",
        Skipped: () => "s",
        Ignored: ({ reason }) => reason
      })
    assert.strictEqual(describe(Consumer.Outcome.Ignored({ reason: "redrive-for-another-group" })), "redrive-for-another-group")
    assert.strictEqual(describe(Consumer.Outcome.Handled()), "h")
  })
})
