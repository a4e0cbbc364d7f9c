/**
 * Queue URLs as destinations, against ElasticMQ: queues the raw AWS SDK created (as Terraform or another account
 * would) are reached by their URL, used as they are and never created: the typed `Consumer.run` / `Subscriber`
 * take and settle their messages, `Publisher` sends to them, a FIFO URL keeps per-key order, dead letters go to a
 * URL (given, or the queue's own redrive target) and are listed and redriven there; a URL of a missing queue is
 * `NotFound` and a malformed one `Invalid`, creating nothing; a spec declared for a URL is checked, not applied.
 */
import { assert, layer } from "@effect/vitest"
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  ListQueuesCommand,
  type QueueAttributeName,
  ReceiveMessageCommand,
  SendMessageBatchCommand
} from "@aws-sdk/client-sqs"
import { Broker, Consumer, DeadLetters, Envelope, Publisher, Subscriber, Switchyard, Topic } from "@switchyard/core"
import { Duration, Effect, Fiber, Layer, Result, Schema, Stream } from "effect"
import { SqsBroker, SqsTopology } from "../src/index.ts"
import { metadataAttribute } from "../src/internal/envelope.ts"
import { brokerOn, options, TestServer } from "./helpers.ts"

const Order = Schema.Struct({ id: Schema.String, n: Schema.Number })
const Item = Schema.Struct({ key: Schema.String, n: Schema.Number })
const encoder = new TextEncoder()

const suffix = () => Math.random().toString(36).slice(2, 10)

/** Creates a queue with the raw SDK, as its owner would; its URL. */
const createRaw = (name: string, attributes: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const { raw } = yield* TestServer
    const created = yield* Effect.promise(() => raw.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes })))
    assert.isString(created.QueueUrl)
    return created.QueueUrl ?? ""
  })

const sendRaw = (url: string, bodies: ReadonlyArray<string>, fields: { readonly groupOf?: (i: number) => string } = {}) =>
  Effect.gen(function*() {
    const { raw } = yield* TestServer
    const r = yield* Effect.promise(() =>
      raw.send(new SendMessageBatchCommand({
        QueueUrl: url,
        Entries: bodies.map((MessageBody, i) => ({
          Id: String(i),
          MessageBody,
          ...(fields.groupOf !== undefined ? { MessageGroupId: fields.groupOf(i), MessageDeduplicationId: `d-${i}` } : {})
        }))
      }))
    )
    assert.deepStrictEqual(r.Failed ?? [], [], "the raw send was refused")
  })

const attributesOf = (url: string, names: Array<QueueAttributeName>) =>
  Effect.flatMap(TestServer, ({ raw }) =>
    Effect.promise(() => raw.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: names })))).pipe(
      Effect.map((r) => r.Attributes ?? {})
    )

/** Messages in the queue, visible or held (the raw SDK's view). */
const depthOf = (url: string) =>
  Effect.map(
    attributesOf(url, ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]),
    (a) => Number(a.ApproximateNumberOfMessages) + Number(a.ApproximateNumberOfMessagesNotVisible)
  )

/** Waits until the queue is empty (acks are batched per turn), then its depth. */
const settledDepthOf = (url: string) =>
  Effect.gen(function*() {
    for (let i = 0; i < 100 && (yield* depthOf(url)) > 0; i++) yield* Effect.sleep("100 millis")
    return yield* depthOf(url)
  })

/** Every queue URL the server has. */
const allQueues = Effect.flatMap(TestServer, ({ raw }) =>
  Effect.promise(() => raw.send(new ListQueuesCommand({ MaxResults: 1000 })))).pipe(Effect.map((r) => [...(r.QueueUrls ?? [])].sort()))

const waitFor = (condition: () => boolean, timeout: Duration.Input) =>
  Effect.gen(function*() {
    while (!condition()) yield* Effect.sleep("50 millis")
  }).pipe(Effect.timeout(timeout))

const receiveRaw = (url: string, count: number) =>
  Effect.gen(function*() {
    const { raw } = yield* TestServer
    const got: Array<{ readonly body: string; readonly metadata: string | undefined; readonly group: string | undefined }> = []
    for (let i = 0; i < 20 && got.length < count; i++) {
      const r = yield* Effect.promise(() =>
        raw.send(new ReceiveMessageCommand({
          QueueUrl: url,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 1,
          MessageAttributeNames: ["All"],
          MessageSystemAttributeNames: ["All"]
        }))
      )
      for (const m of r.Messages ?? []) {
        got.push({ body: m.Body ?? "", metadata: m.MessageAttributes?.[metadataAttribute]?.StringValue, group: m.Attributes?.MessageGroupId })
      }
    }
    return got
  })

layer(Switchyard.on(brokerOn()), { excludeTestServices: true, timeout: Duration.minutes(3) })("sqs: queue URLs as destinations", (it) => {
  it.effect("raw SendMessage to a raw queue: Consumer.run on its URL handles and acks every message, the queue ends empty, nothing is created", () =>
    Effect.gen(function*() {
      const url = yield* createRaw(`terraform_orders_${suffix()}`)
      const before = yield* allQueues
      yield* sendRaw(url, [1, 2, 3, 4, 5].map((n) => JSON.stringify({ id: `o-${n}`, n })))
      const handled: Array<typeof Order.Type> = []
      const fiber = yield* Consumer.run(Topic.make(url, Order), (order) => Effect.sync(() => handled.push(order)), { group: "billing" })
        .pipe(Effect.forkChild)
      yield* waitFor(() => handled.length >= 5, "30 seconds")
      yield* Effect.sleep("300 millis")
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual([...handled].sort((a, b) => a.n - b.n), [1, 2, 3, 4, 5].map((n) => ({ id: `o-${n}`, n })))
      assert.strictEqual(yield* settledDepthOf(url), 0, "every message was acked (deleted)")
      assert.deepStrictEqual(yield* allQueues, before, "no queue was created")
      const info = yield* SqsTopology.SqsTopology.use((t) => t.queue(url))
      assert.strictEqual(info.url, url)
      assert.strictEqual(info.visibilityTimeoutSeconds, 30, "the connection's defaultQueue (10 s) is not applied to a URL's queue")
    }))

  it.effect("the typed Subscriber on a URL: a nacked message is redelivered (attempt 2) and then acked", () =>
    Effect.gen(function*() {
      const url = yield* createRaw(`subscriber_in_${suffix()}`)
      yield* sendRaw(url, [JSON.stringify({ id: "again", n: 7 })])
      const seen: Array<readonly [number, number]> = []
      yield* Subscriber.subscribe(Topic.make(url, Order), { group: "g", prefetch: 5 }).pipe(
        Stream.mapEffect((d) =>
          Effect.sync(() => seen.push([Result.isSuccess(d.value) ? d.value.success.n : -1, d.envelope.attempt])).pipe(
            Effect.andThen(() => d.envelope.attempt === 1 ? d.nack() : d.ack)
          )
        ),
        Stream.take(2),
        Stream.timeout(Duration.seconds(30)),
        Stream.runDrain
      )
      assert.deepStrictEqual(seen, [[7, 1], [7, 2]])
      assert.strictEqual(yield* settledDepthOf(url), 0, "the second delivery was acked")
    }))

  it.effect("Publisher to a URL: the raw SDK receives the messages from that queue", () =>
    Effect.gen(function*() {
      const url = yield* createRaw(`consumer_owned_${suffix()}`)
      const before = yield* allQueues
      const topic = Topic.make(url, Order)
      yield* Publisher.publishAll(topic, [{ id: "p-1", n: 1 }, { id: "p-2", n: 2 }])
      const got = yield* receiveRaw(url, 2)
      assert.deepStrictEqual(got.map((m) => JSON.parse(m.body)).sort((a, b) => a.n - b.n), [{ id: "p-1", n: 1 }, { id: "p-2", n: 2 }])
      assert.isTrue(got.every((m) => typeof m.metadata === "string"), "Switchyard's metadata attribute travels")
      assert.deepStrictEqual(yield* allQueues, before, "no queue was created")
    }))

  it.effect("a FIFO URL (last segment ends .fifo): Publisher sets the groups, Consumer.run keeps per-key order", () =>
    Effect.gen(function*() {
      const url = yield* createRaw(`ledger_${suffix()}.fifo`, { FifoQueue: "true" })
      const keys = ["a", "b", "c"]
      const items = Array.from({ length: 60 }, (_, n) => ({ key: keys[n % keys.length]!, n }))
      const topic = Topic.make(url, Item, { key: (i) => i.key })
      yield* Publisher.publishAll(topic, items)
      const seen = new Map<string, Array<number>>()
      const fiber = yield* Consumer.run(topic, ({ key, n }) =>
        Effect.sleep("1 millis").pipe(Effect.andThen(Effect.sync(() => seen.set(key, [...(seen.get(key) ?? []), n])))), {
        group: "ledger",
        concurrency: 4,
        ordering: "key",
        prefetch: 30
      }).pipe(Effect.forkChild)
      yield* waitFor(() => [...seen.values()].reduce((s, a) => s + a.length, 0) >= items.length, "60 seconds")
      yield* Fiber.interrupt(fiber)
      for (const key of keys) {
        assert.deepStrictEqual(seen.get(key), items.filter((i) => i.key === key).map((i) => i.n), `order of ${key}`)
      }
      assert.isTrue((yield* SqsTopology.SqsTopology.use((t) => t.queue(url))).fifo)
    }), 90_000)

  it.effect("a dead-letter destination given as a URL receives the undecodable message with its reason; DeadLetters lists it there", () =>
    Effect.gen(function*() {
      const url = yield* createRaw(`payments_${suffix()}`)
      const dlqUrl = yield* createRaw(`payments_parked_${suffix()}`)
      const before = yield* allQueues
      yield* sendRaw(url, ["<payment>not json</payment>", JSON.stringify({ id: "ok", n: 1 })])
      const topic = Topic.make(url, Order)
      const handled: Array<string> = []
      const fiber = yield* Consumer.run(topic, (o) => Effect.sync(() => handled.push(o.id)), { group: "payments", deadLetter: dlqUrl })
        .pipe(Effect.forkChild)
      yield* waitFor(() => handled.length >= 1, "30 seconds")
      const letters = yield* Effect.gen(function*() {
        for (let i = 0; i < 100; i++) {
          const found = yield* Stream.runCollect(DeadLetters.list(topic, { destination: dlqUrl }))
          if (found.length > 0) return found
          yield* Effect.sleep("100 millis")
        }
        return []
      })
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(handled, ["ok"])
      assert.strictEqual(letters.length, 1)
      const letter = letters[0]!
      assert.strictEqual(letter.originGroup, "payments")
      assert.strictEqual(letter.originDestination, url)
      assert.include(letter.reason, "JSON")
      assert.strictEqual(new TextDecoder().decode(letter.original.payload), "<payment>not json</payment>")
      assert.strictEqual(yield* settledDepthOf(url), 0, "the dead-lettered message was acked at its origin")
      assert.deepStrictEqual(yield* allQueues, before, "no queue was created")
    }))

  it.effect("a URL topic's default dead-letter destination is its queue's redrive target: parked there with a reason, redriven back to the URL", () =>
    Effect.gen(function*() {
      const dlqUrl = yield* createRaw(`inventory_dlq_${suffix()}`)
      const arn = (yield* attributesOf(dlqUrl, ["QueueArn"])).QueueArn ?? ""
      const url = yield* createRaw(`inventory_${suffix()}`, {
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: arn, maxReceiveCount: 5 })
      })
      const before = yield* allQueues
      yield* sendRaw(url, ["not json at all"])
      const topic = Topic.make(url, Order)
      const fiber = yield* Consumer.run(topic, () => Effect.void, { group: "inventory" }).pipe(Effect.forkChild)
      const parked = yield* Effect.gen(function*() {
        for (let i = 0; i < 100 && (yield* depthOf(dlqUrl)) === 0; i++) yield* Effect.sleep("100 millis")
        return yield* depthOf(dlqUrl)
      })
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(parked, 1, "the redrive target got the dead letter")
      const letters = yield* Stream.runCollect(DeadLetters.list(topic))
      assert.strictEqual(letters.length, 1)
      assert.strictEqual(letters[0]!.errorTag, "DecodeError")
      assert.isString(letters[0]!.reason)
      // the listing left it (made it visible again, through the batched settle calls): wait until it is
      for (let i = 0; i < 100 && (yield* attributesOf(dlqUrl, ["ApproximateNumberOfMessages"])).ApproximateNumberOfMessages !== "1"; i++) {
        yield* Effect.sleep("100 millis")
      }
      const summary = yield* DeadLetters.redrive(topic)
      assert.strictEqual(summary.redriven, 1)
      const back = yield* receiveRaw(url, 1)
      assert.deepStrictEqual(back.map((m) => m.body), ["not json at all"], "redriven to the URL it came from")
      assert.strictEqual(yield* settledDepthOf(dlqUrl), 0, "the redriven dead letter was removed")
      assert.deepStrictEqual(yield* allQueues, before, "no queue was created")
    }), 90_000)

  it.effect("a URL topic whose queue has no redrive policy has no default dead-letter queue: Invalid, with what to do", () =>
    Effect.gen(function*() {
      const url = yield* createRaw(`no_redrive_${suffix()}`)
      const error = yield* Effect.flip(SqsTopology.SqsTopology.use((t) => t.queue(`${url}.dlq`)))
      assert.strictEqual(error.reason._tag, "Invalid")
      assert.include(error.reason.message, "no redrive policy")
    }))

  it.effect("a URL of a missing queue: publish, subscribe and the topology fail with NotFound, and nothing is created", () =>
    Effect.gen(function*() {
      const existing = yield* createRaw(`present_${suffix()}`)
      const missing = existing.replace(/present_[a-z0-9]+$/, `absent_${suffix()}`)
      const before = yield* allQueues
      const broker = yield* Broker.Broker
      const published = yield* Effect.flip(broker.publish(missing, [Envelope.outgoing(encoder.encode("{}"), { id: "m" })]))
      assert.strictEqual(published._tag, "PublishError")
      assert.strictEqual(published.reason._tag, "NotFound")
      const subscribed = yield* Effect.flip(Effect.scoped(broker.subscribe(missing, { group: "g", prefetch: 1, startFrom: "earliest" })))
      assert.strictEqual(subscribed._tag, "SubscribeError")
      assert.strictEqual(subscribed.reason._tag, "NotFound")
      const declared = yield* Effect.flip(SqsTopology.SqsTopology.use((t) => t.queue(missing)))
      assert.strictEqual(declared._tag, "SqsTopologyError")
      assert.strictEqual(declared.reason._tag, "NotFound")
      const typed = yield* Effect.flip(Publisher.publish(Topic.make(missing, Order), { id: "x", n: 0 }))
      assert.strictEqual(typed._tag === "PublishError" ? typed.reason._tag : typed._tag, "NotFound")
      assert.deepStrictEqual(yield* allQueues, before, "no queue was created")
    }))

  it.effect("a malformed URL is Invalid on every path, and nothing is created", () =>
    Effect.gen(function*() {
      const { endpoint } = yield* TestServer
      const before = yield* allQueues
      const broker = yield* Broker.Broker
      // each refused by the adapter itself (the message says why), not by whatever SQS would make of it
      const malformed: ReadonlyArray<readonly [string, string]> = [
        ["ftp://127.0.0.1/000000000000/orders", "not an http(s) URL"],
        [endpoint, "no queue name"],
        [`${endpoint}/`, "no queue name"],
        [`${endpoint}/000000000000/`, "no queue name"],
        [`${endpoint}/000000000000/orders.dlq.x`, "not an SQS queue name"],
        [`${endpoint}/000000000000/bad name`, "not an SQS queue name"],
        [`${endpoint}/000000000000/orders?Action=SendMessage`, "no query or fragment"],
        ["https:///000000000000/orders", "no host"]
      ]
      for (const [destination, why] of malformed) {
        const published = yield* Effect.flip(broker.publish(destination, [Envelope.outgoing(encoder.encode("{}"), { id: "m" })]))
        assert.strictEqual(published.reason._tag, "Invalid", `publish to ${destination}: ${published.reason.message}`)
        assert.include(published.reason.message, why, `publish to ${destination}`)
        const subscribed = yield* Effect.flip(Effect.scoped(broker.subscribe(destination, { group: "g", prefetch: 1, startFrom: "earliest" })))
        assert.strictEqual(subscribed.reason._tag, "Invalid", `subscribe to ${destination}`)
        assert.include(subscribed.reason.message, why, `subscribe to ${destination}`)
      }
      assert.deepStrictEqual(yield* allQueues, before, "no queue was created")
    }))

  it.effect("a queue Switchyard creates can redrive to an existing queue given by its URL (deadLetterQueue)", () =>
    Effect.gen(function*() {
      const { endpoint } = yield* TestServer
      const dlqUrl = yield* createRaw(`shared_dlq_${suffix()}`)
      const arn = (yield* attributesOf(dlqUrl, ["QueueArn"])).QueueArn
      const before = yield* allQueues
      const name = `created_${suffix()}`
      const info = yield* SqsTopology.SqsTopology.use((t) => t.queue(name)).pipe(
        Effect.provide(SqsBroker.layer(options(endpoint, { queues: { [name]: { maxReceiveCount: 3, deadLetterQueue: dlqUrl } } })).pipe(Layer.orDie))
      )
      assert.strictEqual(info.maxReceiveCount, 3)
      assert.strictEqual(info.deadLetterTargetArn, arn, "the redrive policy targets the URL's queue")
      assert.deepStrictEqual((yield* allQueues).filter((u) => !before.includes(u)), [info.url], "only the declared queue was created")
    }))

  it.effect("an AWS queue URL in another region than the connection's is Invalid before any call (AWS would refuse the signature)", () =>
    Effect.gen(function*() {
      // the connection's endpoint is ElasticMQ, which would answer for this URL by its queue name: the refusal is the adapter's
      const name = `regional_${suffix()}`
      yield* createRaw(name)
      const broker = yield* Broker.Broker
      const url = `https://sqs.us-east-1.amazonaws.com/000000000000/${name}`
      const error = yield* Effect.flip(broker.publish(url, [Envelope.outgoing(encoder.encode("{}"), { id: "r" })]))
      assert.strictEqual(error.reason._tag, "Invalid")
      assert.include(error.reason.message, "is in us-east-1")
    }))

  it.effect("a spec declared for a URL is checked against the queue, never applied: a match is used, a difference is TopologyConflict", () =>
    Effect.gen(function*() {
      const { endpoint } = yield* TestServer
      const dlqUrl = yield* createRaw(`declared_dlq_${suffix()}`)
      const arn = (yield* attributesOf(dlqUrl, ["QueueArn"])).QueueArn ?? ""
      const url = yield* createRaw(`declared_${suffix()}`, {
        VisibilityTimeout: "45",
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: arn, maxReceiveCount: 4 })
      })
      const queueWith = (spec: SqsTopology.QueueSpec) =>
        SqsTopology.SqsTopology.use((t) => t.queue(url)).pipe(
          Effect.provide(SqsBroker.layer(options(endpoint, { queues: { [url]: spec } })).pipe(Layer.orDie))
        )
      const matching = yield* queueWith({ visibilityTimeout: "45 seconds", maxReceiveCount: 4, deadLetterQueue: dlqUrl })
      assert.strictEqual(matching.visibilityTimeoutSeconds, 45)
      assert.strictEqual(matching.maxReceiveCount, 4)
      const visibility = yield* Effect.flip(queueWith({ visibilityTimeout: "1 minute" }))
      assert.strictEqual(visibility.reason._tag, "TopologyConflict")
      assert.include(visibility.reason.message, "VisibilityTimeout")
      const receives = yield* Effect.flip(queueWith({ maxReceiveCount: 9 }))
      assert.strictEqual(receives.reason._tag, "TopologyConflict")
      assert.include(receives.reason.message, "maxReceiveCount")
      const target = yield* Effect.flip(queueWith({ maxReceiveCount: 4, deadLetterQueue: "elsewhere" }))
      assert.strictEqual(target.reason._tag, "TopologyConflict")
      assert.include(target.reason.message, "deadLetterTargetArn")
      assert.strictEqual((yield* attributesOf(url, ["VisibilityTimeout"])).VisibilityTimeout, "45", "the queue was not changed")
    }))
})
