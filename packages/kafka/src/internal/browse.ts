/**
 * `Broker.browse` for Kafka: an operator's read of a parking topic (a dead-letter topic).
 *
 * Kafka cannot delete single records, so a removal is RECORDED: a compacted companion topic
 * `<destination>.removed` (one partition, created on first use) holds one record per removed record, keyed
 * `<partition>/<offset>`, its value the removed record's timestamp (so a removal never hides a different
 * record at the same coordinates, e.g. after the topic was deleted and created again).
 *
 * A browse of a topic that does not exist is empty (and creates nothing). A browse reads `.removed` fully, then the destination from its earliest offsets to the end offsets at
 * open (a throwaway group that never commits, deleted at close), passing over removed records. `retained`
 * is the records in that range minus the removed ones; the stream ends at the end offsets; `ack` produces
 * the removal record (confirmed by the broker: removed for every later browse); `nack` or leaving a record
 * unsettled changes nothing.
 */
import { Clock, Effect, Schema, Stream } from "effect"
import type { Scope } from "effect"
import type { Errors } from "@switchyard/core"
import type { Broker, Envelope } from "@switchyard/core"
import type { KafkaMessage } from "kafkajs"
import { Settlement } from "@switchyard/core/adapter"
import type { Admin } from "kafkajs"
import type { KafkaConnection } from "../KafkaConnection.ts"
import type { KafkaTopology } from "../KafkaTopology.ts"
import { fromRecord } from "./envelope.ts"
import { ackError, subscribeError } from "./errors.ts"
import { readRange } from "./range.ts"

/**
 * The companion topic recording what a browse removed from `destination`.
 */
export const removedTopic = (destination: string): string => `${destination}.removed`

/** The value of a removal record. */
const Removal = Schema.fromJsonString(Schema.Struct({ timestamp: Schema.String }))
const decodeRemoval = Schema.decodeUnknownOption(Removal)
const encodeRemoval = Schema.encodeSync(Removal)

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Removed offsets per partition, with the timestamp of the record removed there. */
type Removals = Map<number, Map<number, string>>

const keyPattern = /^(\d+)\/(\d+)$/

const applyRemoval = (removals: Removals, message: KafkaMessage) => {
  const match = message.key === null ? null : keyPattern.exec(message.key.toString())
  if (match === null) return
  const partition = Number(match[1])
  const offset = Number(match[2])
  const of = removals.get(partition) ?? new Map<number, string>()
  removals.set(partition, of)
  if (message.value === null) {
    of.delete(offset)
    return
  }
  const value = decodeRemoval(decoder.decode(message.value))
  if (value._tag === "Some") of.set(offset, value.value.timestamp)
}

/** What browse needs from the broker. */
export interface BrowseDeps {
  readonly connection: KafkaConnection["Service"]
  readonly topology: KafkaTopology["Service"]
  readonly publish: (
    destination: string,
    messages: ReadonlyArray<Envelope.OutgoingMessage>
  ) => Effect.Effect<ReadonlyArray<Envelope.PublishReceipt>, Errors.PublishError>
}

interface Range {
  readonly low: number
  readonly high: number
}

const endOffsets = (admin: Admin, topic: string) =>
  Effect.tryPromise({
    try: () => admin.fetchTopicOffsets(topic),
    catch: (cause) => subscribeError(topic, cause, "fetching the end offsets failed")
  }).pipe(
    Effect.map((offsets) =>
      new Map(offsets.map((o): [number, Range] => [o.partition, { low: Number(o.low), high: Number(o.high) }]))
    )
  )

const deleteGroup = (admin: Admin, groupId: string) =>
  Effect.tryPromise(() => admin.deleteGroups([groupId])).pipe(
    Effect.catch((error) => Effect.logDebug(`could not delete the browse group ${groupId}`, String(error)))
  )

/**
 * Opens a browse of `destination` in the current scope.
 */
export const browse = (deps: BrowseDeps) =>
(
  destination: string,
  options: Broker.BrowseOptions
): Effect.Effect<Broker.Browse, Errors.SubscribeError, Scope.Scope> =>
  Effect.gen(function*() {
    const { connection, topology } = deps
    const admin = connection.admin
    const removed = removedTopic(destination)
    const declared = connection.resolved.options.topics?.[removed] ?? {}
    // a destination that does not exist holds nothing: reading it creates nothing
    const topics = yield* Effect.tryPromise({
      try: () => admin.listTopics(),
      catch: (cause) => subscribeError(destination, cause, "listing the topics failed")
    })
    if (!topics.includes(destination)) return { deliveries: Stream.empty, retained: 0 }
    yield* topology.createTopics([{
      partitions: 1,
      ...declared,
      topic: removed,
      configs: { "cleanup.policy": "compact", ...declared.configs }
    }]).pipe(Effect.mapError((e) => subscribeError(removed, e)))
    const groupId = `switchyard-browse-${destination}-${crypto.randomUUID()}`
    // runs last: after both readers left the group
    yield* Effect.addFinalizer(() => deleteGroup(admin, groupId))

    // 1. every removal recorded so far
    const removals: Removals = new Map()
    const removedEnds = yield* endOffsets(admin, removed)
    yield* readRange({
      connection,
      topic: removed,
      groupId,
      ends: new Map([...removedEnds].map(([p, r]) => [p, r.high])),
      prefetch: 10_000
    }).pipe(
      Effect.flatMap(Stream.runForEach((r) => Effect.andThen(Effect.sync(() => applyRemoval(removals, r.message)), r.release))),
      Effect.scoped
    )

    // 2. the destination, from the earliest offsets to the end offsets at open
    const ranges = yield* endOffsets(admin, destination)
    let retained = 0
    for (const [partition, { high, low }] of ranges) {
      retained += Math.max(0, high - low)
      for (const offset of removals.get(partition)?.keys() ?? []) if (offset >= low && offset < high) retained--
    }
    const isRemoved = (partition: number, message: KafkaMessage) =>
      removals.get(partition)?.get(Number(message.offset)) === message.timestamp

    const records = yield* readRange({
      connection,
      topic: destination,
      groupId,
      ends: new Map([...ranges].map(([p, r]) => [p, r.high])),
      prefetch: options.prefetch,
      skip: isRemoved
    })
    const clock = yield* Clock.Clock
    const now = () => clock.currentTimeMillisUnsafe()

    const removal = (partition: number, message: KafkaMessage): Envelope.OutgoingMessage => ({
      id: `${destination}/${partition}/${message.offset}.removed`,
      key: `${partition}/${message.offset}`,
      headers: {},
      timestamp: now(),
      contentType: "application/json",
      payload: encoder.encode(encodeRemoval({ timestamp: message.timestamp })),
      correlationId: undefined,
      causationId: undefined
    })

    const deliveries = records.pipe(Stream.map(({ message, partition, release }): Broker.RawDelivery => {
      const envelope = fromRecord(destination, partition, message, 1, now)
      const recordRemoval = deps.publish(removed, [removal(partition, message)]).pipe(
        Effect.mapError((e) => ackError(destination, e, "recording the removal failed"))
      )
      const settled = Settlement.make(destination, {
        ack: Effect.ensuring(recordRemoval, release),
        nack: () => release
      })
      return { envelope, ack: settled.ack, nack: settled.nack }
    }))
    return { deliveries, retained }
  })
