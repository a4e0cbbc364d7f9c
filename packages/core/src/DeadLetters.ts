/**
 * Dead-letter operations, the same on every broker that retains dead letters: list them (typed, with the
 * reason and origin), count them, redrive them to the destination they came from, and purge them.
 *
 * Everything works over `Broker.browse`, an operator's read of the dead-letter destination (`<topic>.dlq`
 * by default) that sees every dead letter whichever group parked it, outside any group's competition.
 *
 * A redrive republishes the original message (its original id, key, headers and payload) to its origin
 * destination with `x-switchyard-redrive-group: <the group that dead-lettered it>` and a fresh broker-level
 * `dedupId`, and removes the dead letter only after the broker confirmed the republish: never lost, at most
 * duplicated. The `Consumer` acks a redriven copy meant for another group without running its handler, and
 * runs it in the named group even though that group's idempotency ledger recorded the id.
 *
 * @since 0.2.0
 */
import type { Result } from "effect"
import { Clock, Duration, Effect, Option, Ref, Schema, Stream } from "effect"
import type { Scope } from "effect"
import type { Browse, RawDelivery } from "./Broker.ts"
import { Broker } from "./Broker.ts"
import type { Envelope, OutgoingMessage } from "./Envelope.ts"
import { makeId } from "./Envelope.ts"
import type { DecodeError, PublishError } from "./Errors.ts"
import { reason, SubscribeError } from "./Errors.ts"
import * as H from "./Headers.ts"
import * as Subscriber from "./Subscriber.ts"
import type { Topic } from "./Topic.ts"

/**
 * The form a dead letter was stored in (see docs/architecture.md, "Dead letters the broker refuses").
 *
 * @category models
 * @since 0.2.0
 */
export type Form = "full" | "headers-omitted" | "payload-omitted"

/**
 * One message of a dead-letter destination, parsed from its `x-switchyard-dlq-*` headers.
 *
 * A message in the destination that is not a Switchyard dead letter (no reason header) is reported too, with
 * `isDeadLetter: false` and the reason {@link notADeadLetter}; it is never redriven.
 *
 * @category models
 * @since 0.2.0
 */
export interface DeadLetter<A> {
  /** The dead letter as stored (its own id, headers, coordinates in the dead-letter destination). */
  readonly envelope: Envelope
  /**
   * What a redrive republishes: the original id, key, key bytes, content type, correlation and causation ids,
   * timestamp and payload, and the headers without the `x-switchyard-dlq-*` and redrive headers.
   */
  readonly original: OutgoingMessage
  /** The payload decoded with the topic's codec. */
  readonly value: Result.Result<A, DecodeError>
  readonly reason: string
  readonly errorTag: string
  readonly attempts: number
  /** The consumer group that dead-lettered it (`""` when unknown). */
  readonly originGroup: string
  /** The destination it was consumed from (`""` when unknown). */
  readonly originDestination: string
  /** The original broker coordinates, as the JSON text the `Consumer` stored. */
  readonly originCoordinates: string
  /** When it was dead-lettered, epoch milliseconds (0 when unknown). */
  readonly deadLetteredAt: number
  readonly form: Form
  /** Whether it carries Switchyard's dead-letter headers. */
  readonly isDeadLetter: boolean
  /**
   * Whether a redrive can republish it: a Switchyard dead letter with an origin destination and group that
   * still carries the payload (a `"payload-omitted"` one does not: the original sits at its origin).
   */
  readonly redrivable: boolean
}

/**
 * Which dead letters an operation applies to; every field set must match.
 *
 * @category models
 * @since 0.2.0
 */
export interface Filter {
  /** The consumer group that dead-lettered it. */
  readonly group?: string | undefined
  /** A substring of the reason. */
  readonly reason?: string | undefined
  /** The error tag, exactly. */
  readonly errorTag?: string | undefined
  /** The original message id, exactly. */
  readonly id?: string | undefined
  /** Dead-lettered at or after this time (epoch milliseconds). */
  readonly since?: number | undefined
  /** Dead-lettered at or before this time (epoch milliseconds). */
  readonly until?: number | undefined
  readonly predicate?: ((deadLetter: DeadLetter<unknown>) => boolean) | undefined
}

/**
 * Where the dead letters are read from: `destination` (default `"<topic>.dlq"`).
 *
 * @category models
 * @since 0.2.0
 */
export interface Source {
  readonly destination?: string | undefined
}

/**
 * How far a redrive or purge got; given to `onProgress` at least every 100 messages and once at the end.
 *
 * @category models
 * @since 0.2.0
 */
export interface Progress {
  /** Messages the destination retained when the operation began. */
  readonly retained: number
  /** Messages looked at so far. */
  readonly seen: number
  /** Of those, the ones matching the filter. */
  readonly matched: number
  /** Redriven (or purged) so far; in a dry run, what would have been. */
  readonly done: number
  readonly elapsedMillis: number
}

/**
 * Counts of the (matching) dead letters of a destination.
 *
 * @category models
 * @since 0.2.0
 */
export interface Counts {
  readonly total: number
  readonly byReason: Readonly<Record<string, number>>
  readonly byGroup: Readonly<Record<string, number>>
  readonly byErrorTag: Readonly<Record<string, number>>
}

/**
 * Options of {@link redrive}.
 *
 * @category models
 * @since 0.2.0
 */
export interface RedriveOptions extends Filter, Source {
  /** The most republishes per second (default: as fast as the broker confirms). */
  readonly rate?: number | undefined
  /** Count what would be redriven; publish and remove nothing. */
  readonly dryRun?: boolean | undefined
  /** Redrive at most this many. */
  readonly limit?: number | undefined
  readonly onProgress?: ((progress: Progress) => Effect.Effect<void>) | undefined
}

/**
 * Options of {@link purge}.
 *
 * @category models
 * @since 0.2.0
 */
export interface PurgeOptions extends Filter, Source {
  /** Count what would be purged; remove nothing. */
  readonly dryRun?: boolean | undefined
  /** Purge at most this many. */
  readonly limit?: number | undefined
  readonly onProgress?: ((progress: Progress) => Effect.Effect<void>) | undefined
}

/**
 * What a redrive did.
 *
 * @category models
 * @since 0.2.0
 */
export interface RedriveSummary {
  readonly retained: number
  /** Messages looked at (every retained one, unless `limit` stopped early). */
  readonly seen: number
  readonly matched: number
  /**
   * Republished (broker-confirmed) and removed from the dead-letter destination; in a dry run, what would
   * have been (nothing is published).
   */
  readonly redriven: number
  /** Messages left in the dead-letter destination, of those looked at. */
  readonly kept: number
  /** Matching messages that cannot be redriven (not a Switchyard dead letter, or its payload was omitted). */
  readonly unredrivable: number
  /** Republished, but the dead letter could not be removed: a later redrive republishes it again. */
  readonly notRemoved: number
  readonly dryRun: boolean
  readonly elapsedMillis: number
  /** `redriven` per second of `elapsedMillis` (0 when no time passed). */
  readonly ratePerSecond: number
  /** Matching messages per reason. */
  readonly byReason: Readonly<Record<string, number>>
}

/**
 * What a purge did.
 *
 * @category models
 * @since 0.2.0
 */
export interface PurgeSummary {
  readonly retained: number
  readonly seen: number
  readonly matched: number
  /** Removed for good; in a dry run, what would have been. */
  readonly purged: number
  readonly kept: number
  /** Matching messages the broker did not remove (the ack failed). */
  readonly notRemoved: number
  readonly dryRun: boolean
  readonly elapsedMillis: number
  readonly byReason: Readonly<Record<string, number>>
}

/**
 * The reason reported for a message of a dead-letter destination without Switchyard's dead-letter headers.
 *
 * @category constants
 * @since 0.2.0
 */
export const notADeadLetter = "not a Switchyard dead letter"

/** Deliveries a read holds unsettled; batches are at most half of it, and at most 100 (progress). */
const browsePrefetch = 256
const batchSize = 100

const dlqPrefix = "x-switchyard-dlq-"
/** Headers the stored envelope's own fields carry, and the redrive headers of an earlier redrive. */
const strippedHeaders: ReadonlySet<string> = new Set([
  H.messageId,
  H.key,
  H.timestamp,
  H.correlationId,
  H.causationId,
  H.contentType,
  H.redriveGroup,
  H.redrivenAt
])

const decodeNumber = Schema.decodeUnknownOption(Schema.FiniteFromString)
const numberHeader = (headers: H.Headers, name: string): number | undefined => {
  const value = headers[name]
  return value === undefined || value.trim() === "" ? undefined : Option.getOrUndefined(decodeNumber(value))
}

const originalHeaders = (headers: H.Headers): H.Headers => {
  const kept: Record<string, string> = {}
  for (const name in headers) {
    const lower = name.toLowerCase()
    if (lower.startsWith(dlqPrefix) || strippedHeaders.has(lower)) continue
    kept[name] = headers[name]!
  }
  return kept
}

/**
 * Parses a message of a dead-letter destination into a {@link DeadLetter}, decoding its payload with the
 * topic's codec. Never fails: a message without the dead-letter headers is reported as
 * {@link notADeadLetter}.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { DeadLetters, Envelope, Topic } from "@switchyard/core"
 * const orders = Topic.make("orders", Schema.Struct({ id: Schema.String }))
 * declare const stored: Envelope.Envelope
 * const deadLetter = DeadLetters.parse(orders, stored)
 * console.log(deadLetter.reason, deadLetter.originGroup, deadLetter.original.id)
 * ```
 * @category parsing
 * @since 0.2.0
 */
export const parse = <A>(topic: Topic<A>, envelope: Envelope): DeadLetter<A> => {
  const headers = envelope.headers
  const reason = headers[H.deadLetterReason]
  const isDeadLetter = reason !== undefined
  const originalId = headers[H.deadLetterOriginalId]
  const payloadOmitted = headers[H.deadLetterPayloadOmitted] === "true"
  const form: Form = payloadOmitted ? "payload-omitted" : headers[H.deadLetterHeadersOmitted] !== undefined ? "headers-omitted" : "full"
  const originGroup = headers[H.deadLetterOriginGroup] ?? ""
  const originDestination = headers[H.deadLetterOriginDestination] ?? ""
  const original: OutgoingMessage = {
    id: originalId !== undefined && originalId !== "" ? originalId : envelope.id,
    key: envelope.key,
    keyBytes: envelope.keyBytes,
    headers: originalHeaders(headers),
    timestamp: envelope.timestamp,
    contentType: envelope.contentType,
    payload: envelope.payload,
    correlationId: envelope.correlationId,
    causationId: envelope.causationId
  }
  // The codec path of `Subscriber.decode`, without a delivery to settle.
  const { value } = Subscriber.decode(topic, { envelope, ack: Effect.void, nack: () => Effect.void })
  return {
    envelope,
    original,
    value,
    reason: reason ?? notADeadLetter,
    errorTag: headers[H.deadLetterErrorTag] ?? "",
    attempts: numberHeader(headers, H.deadLetterAttempts) ?? 0,
    originGroup,
    originDestination,
    originCoordinates: headers[H.deadLetterOriginCoordinates] ?? "",
    deadLetteredAt: numberHeader(headers, H.deadLetterAt) ?? 0,
    form,
    isDeadLetter,
    redrivable: isDeadLetter && !payloadOmitted && originDestination !== "" && originGroup !== ""
  }
}

/**
 * Whether a dead letter matches a filter (every field set must match; an empty filter matches everything).
 *
 * @example
 * ```ts
 * import { DeadLetters } from "@switchyard/core"
 * declare const deadLetter: DeadLetters.DeadLetter<unknown>
 * DeadLetters.matches({ group: "billing", reason: "declined" })(deadLetter)
 * ```
 * @category filtering
 * @since 0.2.0
 */
export const matches = (filter: Filter) => (deadLetter: DeadLetter<unknown>): boolean =>
  (filter.group === undefined || deadLetter.originGroup === filter.group) &&
  (filter.reason === undefined || deadLetter.reason.includes(filter.reason)) &&
  (filter.errorTag === undefined || deadLetter.errorTag === filter.errorTag) &&
  (filter.id === undefined || deadLetter.original.id === filter.id) &&
  (filter.since === undefined || deadLetter.deadLetteredAt >= filter.since) &&
  (filter.until === undefined || deadLetter.deadLetteredAt <= filter.until) &&
  (filter.predicate === undefined || filter.predicate(deadLetter))

const destinationOf = (topic: { readonly name: string }, source: Source): string => source.destination ?? `${topic.name}.dlq`

/** Opens the operator's read of a dead-letter destination, or fails clearly on a broker that keeps none. */
const open = (destination: string): Effect.Effect<Browse, SubscribeError, Broker | Scope.Scope> =>
  Effect.flatMap(Broker, (broker) =>
    broker.browse === undefined
      ? Effect.fail(
        new SubscribeError({
          destination,
          reason: reason(
            "NotFound",
            `the ${broker.system} broker keeps no dead letters: it cannot browse "${destination}" ` +
              `(no Broker.browse; dead letters need a broker that retains messages)`
          )
        })
      )
      : broker.browse(destination, { prefetch: browsePrefetch }))

/** Leaves a message where it is; a failed nack leaves it too (it is redelivered when the read closes). */
const leave = (delivery: RawDelivery): Effect.Effect<void> =>
  delivery.nack().pipe(Effect.catch((error) => Effect.logDebug("leaving a dead letter: nack failed", error)))

const increment = (record: Record<string, number>, key: string) => {
  record[key] = (record[key] ?? 0) + 1
}

/**
 * The dead letters of a topic (from `"<topic>.dlq"` unless `destination` is given) that match the filter, as
 * retained when the stream starts; it ends after the last one. Reading removes nothing.
 *
 * @example
 * ```ts
 * import { Effect, Schema, Stream } from "effect"
 * import { DeadLetters, Topic } from "@switchyard/core"
 * const orders = Topic.make("orders", Schema.Struct({ id: Schema.String }))
 * const printBillingFailures = DeadLetters.list(orders, { group: "billing", limit: 20 }).pipe(
 *   Stream.runForEach((dl) => Effect.log(`${dl.original.id}: ${dl.errorTag}: ${dl.reason}`))
 * )
 * ```
 * @category reading
 * @since 0.2.0
 */
export const list = <A>(
  topic: Topic<A>,
  options: Filter & Source & { readonly limit?: number | undefined } = {}
): Stream.Stream<DeadLetter<A>, SubscribeError, Broker> => {
  const selected = matches(options)
  const all = Stream.unwrap(
    Effect.map(open(destinationOf(topic, options)), (browse) =>
      browse.deliveries.pipe(
        Stream.mapEffect((delivery) => Effect.as(leave(delivery), parse(topic, delivery.envelope))),
        Stream.filter((deadLetter) => selected(deadLetter))
      ))
  )
  return options.limit === undefined ? all : Stream.take(all, Math.max(0, options.limit))
}

/**
 * Counts the dead letters of a topic that match the filter, in total and by reason, group and error tag.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { DeadLetters, Topic } from "@switchyard/core"
 * const orders = Topic.make("orders", Schema.Struct({ id: Schema.String }))
 * const report = Effect.gen(function*() {
 *   const counts = yield* DeadLetters.count(orders)
 *   yield* Effect.log(`${counts.total} dead letters`, counts.byReason)
 * })
 * ```
 * @category reading
 * @since 0.2.0
 */
export const count = <A>(topic: Topic<A>, options: Filter & Source = {}): Effect.Effect<Counts, SubscribeError, Broker> =>
  Stream.runFold(
    list(topic, options),
    (): { total: number; byReason: Record<string, number>; byGroup: Record<string, number>; byErrorTag: Record<string, number> } => ({
      total: 0,
      byReason: {},
      byGroup: {},
      byErrorTag: {}
    }),
    (counts, deadLetter) => {
      counts.total++
      increment(counts.byReason, deadLetter.reason)
      increment(counts.byGroup, deadLetter.originGroup)
      increment(counts.byErrorTag, deadLetter.errorTag)
      return counts
    }
  )

interface Item<A> {
  readonly delivery: RawDelivery
  readonly deadLetter: DeadLetter<A>
  readonly matched: boolean
}

interface Tally {
  readonly seen: number
  readonly matched: number
  readonly done: number
  readonly unredrivable: number
  readonly notRemoved: number
  readonly byReason: Readonly<Record<string, number>>
}

const emptyTally: Tally = { seen: 0, matched: 0, done: 0, unredrivable: 0, notRemoved: 0, byReason: {} }

/** What one batch did: the counters to add (`byReason` of its matching messages). */
type BatchResult = Omit<Tally, "seen" | "matched" | "byReason">

const addBatch = <A>(tally: Tally, batch: ReadonlyArray<Item<A>>, result: BatchResult): Tally => {
  const byReason = { ...tally.byReason }
  let matched = 0
  for (const item of batch) {
    if (!item.matched) continue
    matched++
    increment(byReason, item.deadLetter.reason)
  }
  return {
    seen: tally.seen + batch.length,
    matched: tally.matched + matched,
    done: tally.done + result.done,
    unredrivable: tally.unredrivable + result.unredrivable,
    notRemoved: tally.notRemoved + result.notRemoved,
    byReason
  }
}

/** Removes a dead letter; `false` when the broker did not (it stays, and is looked at again next time). */
const remove = (item: Item<unknown>): Effect.Effect<boolean> =>
  item.delivery.ack.pipe(
    Effect.as(true),
    Effect.catch((error) =>
      Effect.as(Effect.logWarning(`could not remove dead letter ${item.deadLetter.envelope.id}; it stays`, error), false)
    )
  )

interface Run<A> {
  readonly retained: number
  readonly tally: Tally
  readonly elapsedMillis: number
  readonly items: ReadonlyArray<Item<A>>
}

/**
 * The common loop of redrive and purge: reads the destination in batches (at most 100, so progress comes at
 * least every 100 messages), lets `act` settle each batch (it must settle every item), reports progress.
 * `select` decides which matching items count toward `limit`; once it is reached the rest is left unread.
 */
const operate = Effect.fnUntraced(function*<A, E>(
  topic: Topic<A>,
  options: Filter & Source & {
    readonly limit?: number | undefined
    readonly onProgress?: ((progress: Progress) => Effect.Effect<void>) | undefined
  },
  shape: (items: Stream.Stream<Item<A>, SubscribeError>) => Stream.Stream<Item<A>, SubscribeError>,
  counts: (item: Item<A>) => boolean,
  act: (batch: ReadonlyArray<Item<A>>) => Effect.Effect<BatchResult, E>
): Effect.fn.Return<Omit<Run<A>, "items">, SubscribeError | E, Broker | Scope.Scope> {
  const startedAt = yield* Clock.currentTimeMillis
  const browse = yield* open(destinationOf(topic, options))
  const selected = matches(options)
  const tally = yield* Ref.make(emptyTally)
  const elapsed = Effect.map(Clock.currentTimeMillis, (now) => now - startedAt)
  const onProgress = options.onProgress
  const report = onProgress === undefined ? Effect.void : Effect.flatMap(
    Effect.all([Ref.get(tally), elapsed]),
    ([current, elapsedMillis]) =>
      onProgress({ retained: browse.retained, seen: current.seen, matched: current.matched, done: current.done, elapsedMillis })
  )
  const limit = options.limit === undefined ? Infinity : Math.max(0, options.limit)
  // Once `limit` items that count were taken, the stream ends before the next one (the rest stays unread).
  const limited = limit === Infinity
    ? (items: Stream.Stream<Item<A>, SubscribeError>) => items
    : (items: Stream.Stream<Item<A>, SubscribeError>) =>
      items.pipe(
        Stream.mapAccum(() => 0, (taken, item): readonly [number, ReadonlyArray<Option.Option<Item<A>>>] => {
          if (!(item.matched && counts(item))) return [taken, [Option.some(item)]]
          return taken >= limit ? [taken, [Option.none()]] : [taken + 1, [Option.some(item)]]
        }),
        Stream.takeWhile(Option.isSome),
        Stream.map((item) => item.value)
      )
  yield* browse.deliveries.pipe(
    Stream.map((delivery): Item<A> => {
      const deadLetter = parse(topic, delivery.envelope)
      return { delivery, deadLetter, matched: selected(deadLetter) }
    }),
    limited,
    shape,
    Stream.groupedWithin(batchSize, "20 millis"),
    Stream.runForEach((batch) =>
      act(batch).pipe(
        Effect.flatMap((result) => Ref.update(tally, (current) => addBatch(current, batch, result))),
        Effect.andThen(report)
      )
    )
  )
  yield* report
  return { retained: browse.retained, tally: yield* Ref.get(tally), elapsedMillis: yield* elapsed }
}, Effect.scoped)

/** Span attributes of an operation: the destination read and the filter, for traces. */
const spanAttributes = (topic: { readonly name: string }, options: Filter & Source & { readonly dryRun?: boolean | undefined }) => ({
  "messaging.destination.name": destinationOf(topic, options),
  "switchyard.dead_letters.group": options.group ?? "",
  "switchyard.dead_letters.dry_run": options.dryRun === true
})

/** The copy a redrive republishes: the original, meant for the group that dead-lettered it. */
const redrivenCopy = (deadLetter: DeadLetter<unknown>, now: number): OutgoingMessage => ({
  ...deadLetter.original,
  dedupId: `${deadLetter.original.id}.redrive.${makeId()}`,
  headers: { ...deadLetter.original.headers, [H.redriveGroup]: deadLetter.originGroup, [H.redrivenAt]: String(now) }
})

/** Consecutive runs of items by origin destination, in order (one publish call each). */
const runsByDestination = <A>(items: ReadonlyArray<Item<A>>): ReadonlyArray<readonly [string, ReadonlyArray<Item<A>>]> => {
  const runs: Array<[string, Array<Item<A>>]> = []
  for (const item of items) {
    const last = runs[runs.length - 1]
    if (last !== undefined && last[0] === item.deadLetter.originDestination) last[1].push(item)
    else runs.push([item.deadLetter.originDestination, [item]])
  }
  return runs
}

/**
 * Redrives the dead letters of a topic that match the filter: republishes each one's `original` to its origin
 * destination (with `x-switchyard-redrive-group` naming the group that dead-lettered it, and a fresh
 * `dedupId`), then removes it from the dead-letter destination, only once the broker confirmed the
 * republish. Non-matching dead letters stay. A failed republish leaves its dead letters where they are and
 * fails the redrive with the `PublishError` (the ones before it were redriven). `rate` caps republishes
 * per second; `dryRun` publishes and removes nothing.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { DeadLetters, Topic } from "@switchyard/core"
 * const orders = Topic.make("orders", Schema.Struct({ id: Schema.String }))
 * const redriveBilling = Effect.gen(function*() {
 *   const summary = yield* DeadLetters.redrive(orders, {
 *     group: "billing",
 *     reason: "card declined",
 *     rate: 200,
 *     onProgress: (p) => Effect.log(`${p.done}/${p.matched} of ${p.retained}`)
 *   })
 *   yield* Effect.log(`redrove ${summary.redriven} at ${summary.ratePerSecond.toFixed(0)}/s; ${summary.kept} kept`)
 * })
 * ```
 * @category operations
 * @since 0.2.0
 */
export const redrive: <A>(
  topic: Topic<A>,
  options?: RedriveOptions
) => Effect.Effect<RedriveSummary, SubscribeError | PublishError, Broker> = Effect.fn("DeadLetters.redrive")(
  function*<A>(topic: Topic<A>, options: RedriveOptions = {}) {
    yield* Effect.annotateCurrentSpan(spanAttributes(topic, options))
    const broker = yield* Broker
    const dryRun = options.dryRun === true
    const rate = options.rate
    const willRedrive = (item: Item<A>) => item.matched && item.deadLetter.redrivable
    const shape = rate === undefined || !(rate > 0) || rate === Infinity
      ? (items: Stream.Stream<Item<A>, SubscribeError>) => items
      : (items: Stream.Stream<Item<A>, SubscribeError>) =>
        items.pipe(
          Stream.rechunk(1),
          // One republish per 1/rate seconds, no burst (a bucket of one token).
          Stream.throttle({
            cost: (chunk) => chunk.filter(willRedrive).length,
            units: 1,
            duration: Duration.millis(1000 / rate),
            burst: 0,
            strategy: "shape"
          })
        )
    const act = Effect.fnUntraced(function*(batch: ReadonlyArray<Item<A>>): Effect.fn.Return<BatchResult, PublishError> {
      const chosen = batch.filter(willRedrive)
      const unredrivable = batch.filter((item) => item.matched && !item.deadLetter.redrivable).length
      yield* Effect.forEach(batch.filter((item) => !willRedrive(item)), (item) => leave(item.delivery), { discard: true })
      if (dryRun) {
        yield* Effect.forEach(chosen, (item) => leave(item.delivery), { discard: true })
        return { done: chosen.length, unredrivable, notRemoved: 0 }
      }
      const now = yield* Clock.currentTimeMillis
      let notRemoved = 0
      let done = 0
      for (const [destination, items] of runsByDestination(chosen)) {
        const published = yield* broker.publish(destination, items.map((item) => redrivenCopy(item.deadLetter, now))).pipe(
          Effect.result
        )
        if (published._tag === "Failure") {
          // Not confirmed: this run and everything after it stays in the dead-letter destination.
          const rest = chosen.slice(chosen.indexOf(items[0]!))
          yield* Effect.forEach(rest, (item) => leave(item.delivery), { discard: true })
          return yield* Effect.fail(published.failure)
        }
        for (const item of items) {
          if (yield* remove(item)) done++
          else notRemoved++
        }
      }
      return { done: done + notRemoved, unredrivable, notRemoved }
    })
    const run = yield* operate(topic, options, shape, willRedrive, act)
    const { tally } = run
    const redriven = tally.done
    return {
      retained: run.retained,
      seen: tally.seen,
      matched: tally.matched,
      redriven,
      kept: tally.seen - (dryRun ? 0 : redriven - tally.notRemoved),
      unredrivable: tally.unredrivable,
      notRemoved: tally.notRemoved,
      dryRun,
      elapsedMillis: run.elapsedMillis,
      ratePerSecond: run.elapsedMillis > 0 ? (redriven * 1000) / run.elapsedMillis : 0,
      byReason: tally.byReason
    }
  }
)

/**
 * Removes the dead letters of a topic that match the filter, for good (`dryRun`: counts them, removes
 * nothing). Non-matching ones stay. Messages that are not Switchyard dead letters are purged too when the
 * filter matches them (an empty filter matches everything).
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { DeadLetters, Topic } from "@switchyard/core"
 * const orders = Topic.make("orders", Schema.Struct({ id: Schema.String }))
 * const purgeOld = DeadLetters.purge(orders, { until: Date.now() - 7 * 24 * 3600_000 }).pipe(
 *   Effect.tap((summary) => Effect.log(`purged ${summary.purged}, kept ${summary.kept}`))
 * )
 * ```
 * @category operations
 * @since 0.2.0
 */
export const purge: <A>(topic: Topic<A>, options?: PurgeOptions) => Effect.Effect<PurgeSummary, SubscribeError, Broker> = Effect
  .fn("DeadLetters.purge")(function*<A>(topic: Topic<A>, options: PurgeOptions = {}) {
    yield* Effect.annotateCurrentSpan(spanAttributes(topic, options))
    const dryRun = options.dryRun === true
    const act = Effect.fnUntraced(function*(batch: ReadonlyArray<Item<A>>): Effect.fn.Return<BatchResult> {
      let done = 0
      let notRemoved = 0
      for (const item of batch) {
        if (!item.matched || dryRun) {
          yield* leave(item.delivery)
          if (item.matched) done++
        } else if (yield* remove(item)) done++
        else notRemoved++
      }
      return { done, unredrivable: 0, notRemoved }
    })
    const run = yield* operate(topic, options, (items) => items, () => true, act)
    const { tally } = run
    return {
      retained: run.retained,
      seen: tally.seen,
      matched: tally.matched,
      purged: tally.done,
      kept: tally.seen - (dryRun ? 0 : tally.done),
      notRemoved: tally.notRemoved,
      dryRun,
      elapsedMillis: run.elapsedMillis,
      byReason: tally.byReason
    }
  })
