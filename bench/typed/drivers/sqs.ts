/**
 * Amazon SQS. Broker: ElasticMQ (`ElasticMQ.start({ persistent: false })`: in-memory storage, faster than the
 * H2 store the tests use, nothing here needs a restart; or `SQS_ENDPOINT`), started once by the orchestrator.
 * Both sides use the same topology, created with the raw SDK before each worker starts: a standard queue with
 * a 30 s visibility timeout, named as the adapter names the destination's queue.
 *
 * Switchyard: `SqsBroker.layer({ endpoint, region, accessKeyId, secretAccessKey })`, defaults otherwise.
 * Raw: `@aws-sdk/client-sqs` (`SQSClient`, the adapter's client settings: 3 attempts, 30 s request timeout)
 * doing what the adapter does:
 * - every message: the body is the JSON text, plus one `String` message attribute `switchyard` holding the
 *   id and content type as JSON (the adapter packs its envelope fields and headers into that one attribute);
 * - publish (single): `SendMessageBatch`, coalesced like the core publisher with the adapter's
 *   `publishConcurrency: 8` — a caller that finds a free slot and nobody waiting sends a one-entry batch, the
 *   others wait and go out in batches of up to 10, at most 8 calls in flight on the queue;
 * - publishBatch (publishAll, the sink's batches): `SendMessageBatch` of 10 messages, up to 8 calls of one
 *   batch at once (the adapter's `publish` on a standard queue; FIFO queues send them one after the other);
 * - consume: `receiversFor(prefetch)` (= ceil(prefetch / 10), 1 to 4) long-poll loops, each
 *   `ReceiveMessage` asking for as many messages as the free prefetch room (1 to 10), `WaitTimeSeconds` 10
 *   (the adapter's default), every message and system attribute; at most `prefetch` held unsettled;
 * - ack: `DeleteMessageBatch`; acks queue up and one loop sends all that queued since its last turn (at most
 *   1,000) in calls of 10, 8 at once, then takes the next turn (the adapter's settler). Receivers and the
 *   settler wake on `setImmediate`, as the adapter's fibers resume on Effect's scheduler.
 * - not mirrored: the adapter's lease heartbeat (it extends the visibility of messages held longer than a
 *   third of the visibility timeout, 10 s; nothing is held that long here).
 * Broker-side check (`GetQueueAttributes`, exact on ElasticMQ): publish rows leave warm-up + N messages in the
 * queue, none in flight; pipelines leave none at all (everything deleted) and handled every order.
 */
import {
  ChangeMessageVisibilityBatchCommand,
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SQSClient,
  type SendMessageBatchRequestEntry
} from "@aws-sdk/client-sqs"
import { SqsBroker, SqsTopology } from "@switchyard/sqs"
import { ElasticMQ } from "@switchyard/sqs/testing"
import { Effect, Exit, Redacted, Scope } from "effect"
import { chunks, pool } from "../common.ts"
import { type Driver, expectEqual } from "../driver.ts"
import { runRaw } from "../raw.ts"
import type { Order, WorkerInput } from "../spec.ts"
import { runTyped } from "../typed.ts"

const VISIBILITY_SECONDS = 30
const WAIT_TIME_SECONDS = 10 // SqsConnection's default waitTime
const IN_FLIGHT = 8 // SqsBroker's publishConcurrency, and the settler's concurrency

const clientOf = (env: Readonly<Record<string, string>>) =>
  new SQSClient({
    region: env["SQS_REGION"]!,
    endpoint: env["SQS_ENDPOINT"]!,
    credentials: { accessKeyId: env["SQS_ACCESS_KEY_ID"]!, secretAccessKey: env["SQS_SECRET_ACCESS_KEY"]! },
    maxAttempts: 3,
    requestHandler: { connectionTimeout: 10_000, requestTimeout: 30_000 }
  })

const entry = (order: Order, i: number): SendMessageBatchRequestEntry => ({
  Id: String(i),
  MessageBody: JSON.stringify(order),
  MessageAttributes: {
    switchyard: { DataType: "String", StringValue: JSON.stringify({ id: order.orderId, ct: "application/json" }) }
  }
})

/** Batched settle calls (the adapter's settler): `visibility` undefined = delete, else ChangeMessageVisibility. */
const makeSettler = (client: SQSClient, url: string) => {
  const queued: Array<{ readonly handle: string; readonly visibility: number | undefined }> = []
  const idle: Array<() => void> = []
  const state = { scheduled: "no", failed: 0 }
  const call = async (batch: ReadonlyArray<{ readonly handle: string; readonly visibility: number | undefined }>) => {
    const visibility = batch[0]!.visibility
    const entries = batch.map((r, i) => ({ Id: String(i), ReceiptHandle: r.handle }))
    const response = visibility === undefined
      ? await client.send(new DeleteMessageBatchCommand({ QueueUrl: url, Entries: entries }))
      : await client.send(
        new ChangeMessageVisibilityBatchCommand({ QueueUrl: url, Entries: entries.map((e) => ({ ...e, VisibilityTimeout: visibility })) })
      )
    state.failed += response.Failed?.length ?? 0
  }
  const turn = async (): Promise<void> => {
    const taken = queued.splice(0, 1000)
    const deletes = taken.filter((r) => r.visibility === undefined)
    const visible = taken.filter((r) => r.visibility !== undefined)
    await pool([...chunks(deletes, 10), ...chunks(visible, 10)], IN_FLIGHT, call)
    if (queued.length > 0) return void setImmediate(() => void turn())
    state.scheduled = "no"
    for (const resolve of idle.splice(0)) resolve()
  }
  const submit = (handle: string, visibility: number | undefined) => {
    queued.push({ handle, visibility })
    if (state.scheduled === "no") {
      state.scheduled = "yes"
      setImmediate(() => void turn())
    }
  }
  return {
    delete: (handle: string) => submit(handle, undefined),
    giveBack: (handle: string) => submit(handle, 0),
    /** Resolves once nothing is queued or in flight; fails when SQS refused a settlement. */
    drained: async () => {
      if (state.scheduled === "yes") await new Promise<void>((resolve) => idle.push(resolve))
      if (state.failed > 0) throw new Error(`${state.failed} settlements were refused`)
    }
  }
}

const raw = async (input: WorkerInput) => {
  const client = clientOf(input.env)
  const { QueueUrl: url } = await client.send(new GetQueueUrlCommand({ QueueName: SqsTopology.queueName(input.destination) }))
  if (url === undefined) throw new Error(`no queue for ${input.destination}`)

  const sendBatch = async (batch: ReadonlyArray<Order>) => {
    const response = await client.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: batch.map(entry) }))
    const failed = response.Failed?.length ?? 0
    if (failed > 0 || (response.Successful?.length ?? 0) !== batch.length) throw new Error(`SQS refused ${failed} of ${batch.length} messages`)
  }

  // Single publishes, coalesced: at most IN_FLIGHT calls at once, each of up to 10 waiting messages.
  const waiting: Array<{ readonly order: Order; readonly resolve: () => void; readonly reject: (e: unknown) => void }> = []
  const publishing = { inFlight: 0 }
  const pump = () => {
    while (publishing.inFlight < IN_FLIGHT && waiting.length > 0) {
      const batch = waiting.splice(0, 10)
      publishing.inFlight++
      sendBatch(batch.map((w) => w.order)).then(
        () => batch.forEach((w) => w.resolve()),
        (e: unknown) => batch.forEach((w) => w.reject(e))
      ).finally(() => {
        publishing.inFlight--
        pump()
      })
    }
  }

  const settler = makeSettler(client, url)
  const consumer = { running: "no", free: 0, wake: new Array<() => void>(), loops: new Array<Promise<void>>() }
  const release = (k: number) => {
    consumer.free += k
    if (consumer.wake.length > 0) setImmediate(() => consumer.wake.splice(0).forEach((resolve) => resolve()))
  }

  return runRaw(input, {
    publish: (order) =>
      new Promise<void>((resolve, reject) => {
        waiting.push({ order, resolve, reject })
        pump()
      }),
    publishBatch: async (batch) => {
      const pending = chunks(batch, 10)
      const lane = async (): Promise<void> => {
        for (let chunk = pending.shift(); chunk !== undefined; chunk = pending.shift()) await sendBatch(chunk)
      }
      await Promise.all(Array.from({ length: IN_FLIGHT }, lane))
    },
    subscribe: async (prefetch, onMessage) => {
      consumer.running = "yes"
      consumer.free = prefetch
      const receive = async (): Promise<void> => {
        while (consumer.running === "yes") {
          if (consumer.free === 0) {
            await new Promise<void>((resolve) => consumer.wake.push(resolve))
            continue
          }
          const count = Math.min(10, consumer.free)
          consumer.free -= count
          const response = await client.send(
            new ReceiveMessageCommand({
              QueueUrl: url,
              MaxNumberOfMessages: count,
              WaitTimeSeconds: WAIT_TIME_SECONDS,
              MessageAttributeNames: ["All"],
              MessageSystemAttributeNames: ["All"]
            })
          )
          const messages = response.Messages ?? []
          if (count > messages.length) release(count - messages.length)
          for (const message of messages) {
            const handle = message.ReceiptHandle!
            // received after the stop: given back (visible again now), as the adapter's stopIntake does
            if (consumer.running !== "yes") {
              settler.giveBack(handle)
              release(1)
              continue
            }
            onMessage(Buffer.from(message.Body ?? "", "utf8"), () => {
              release(1)
              settler.delete(handle)
            })
          }
        }
      }
      const receivers = Math.max(1, Math.min(4, Math.ceil(prefetch / 10)))
      consumer.loops = Array.from({ length: receivers }, receive)
    },
    unsubscribe: async () => {
      consumer.running = "no"
      consumer.wake.splice(0).forEach((resolve) => resolve())
      // a long poll is not aborted (SQS would still hand it messages): it returns within WaitTimeSeconds
      await Promise.all(consumer.loops)
      await settler.drained()
    },
    close: async () => {
      client.destroy()
    }
  })
}

let admin: SQSClient | undefined

export const driver: Driver = {
  name: "sqs",
  title: "Amazon SQS on ElasticMQ (AWS SDK v3)",
  defaultN: 5_000,
  rawLabel: "@aws-sdk/client-sqs (SendMessageBatch ≤10, 8 coalesced in flight; ReceiveMessage long polls; DeleteMessageBatch per turn)",
  setup: async () => {
    const external = process.env["SQS_ENDPOINT"]
    const scope = Effect.runSync(Scope.make())
    const endpoint = external !== undefined && external !== ""
      ? external
      : (await Effect.runPromise(Scope.provide(ElasticMQ.start({ persistent: false }), scope))).endpoint
    const env = {
      SQS_ENDPOINT: endpoint,
      SQS_REGION: process.env["SQS_REGION"] ?? ElasticMQ.region,
      SQS_ACCESS_KEY_ID: process.env["SQS_ACCESS_KEY_ID"] ?? ElasticMQ.credentials.accessKeyId,
      SQS_SECRET_ACCESS_KEY: process.env["SQS_SECRET_ACCESS_KEY"] ?? ElasticMQ.credentials.secretAccessKey
    }
    admin = clientOf(env)
    return {
      env,
      close: async () => {
        admin?.destroy()
        await Effect.runPromise(Scope.close(scope, Exit.void))
      }
    }
  },
  prepare: async (input) => {
    const client = admin!
    const created = await client.send(
      new CreateQueueCommand({ QueueName: SqsTopology.queueName(input.destination), Attributes: { VisibilityTimeout: String(VISIBILITY_SECONDS) } })
    )
    const url = created.QueueUrl!
    const expected = input.warmup + input.n
    return async (result) => {
      try {
        expectEqual("messages confirmed by the worker", result.published, expected)
        const { Attributes: a = {} } = await client.send(
          new GetQueueAttributesCommand({
            QueueUrl: url,
            AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
          })
        )
        const visible = Number(a.ApproximateNumberOfMessages ?? Number.NaN)
        const inFlight = Number(a.ApproximateNumberOfMessagesNotVisible ?? Number.NaN)
        expectEqual(`messages in flight (received, not deleted) in ${input.destination}`, inFlight, 0)
        if (input.case.kind !== "pipeline") {
          expectEqual(`messages in ${input.destination}`, visible, expected)
          return `${visible} messages in the queue`
        }
        expectEqual("distinct orders handled", result.consumed, expected)
        expectEqual(`messages left in ${input.destination}`, visible, 0)
        return `${result.consumed} handled, queue empty`
      } finally {
        await client.send(new DeleteQueueCommand({ QueueUrl: url }))
      }
    }
  },
  typed: (input) =>
    runTyped(
      input,
      SqsBroker.layer({
        endpoint: input.env["SQS_ENDPOINT"]!,
        region: input.env["SQS_REGION"]!,
        accessKeyId: input.env["SQS_ACCESS_KEY_ID"]!,
        secretAccessKey: Redacted.make(input.env["SQS_SECRET_ACCESS_KEY"]!)
      })
    ),
  raw
}
