/**
 * Declare on first use, JetStream's way: the stream holding a destination is the declared one whose
 * subjects match it, else the one the server finds for it, else a stream created for it (named after the
 * destination). Each destination is provisioned once through the kit's `Provisioner`, and everything is
 * forgotten after a reconnect (the server may have lost what was declared) or when a stream is found
 * missing. Also the durable consumer of a group.
 */
import {
  AckPolicy,
  type ConsumerInfo,
  DeliverPolicy,
  DiscardPolicy,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig
} from "@nats-io/jetstream"
import { nanos } from "@nats-io/transport-node"
import type { Broker, Errors } from "@switchyard/core"
import { Provisioner } from "@switchyard/core/adapter"
import { Duration, Effect, Option } from "effect"
import type { ConsumerSettings, StreamDeclaration, StreamSettings } from "../NatsTopology.ts"
import { sanitizeName } from "./envelope.ts"
import { apiCodes, isApiError, subscribeError } from "./errors.ts"

const nanosOf = (d: Duration.Input): number => nanos(Duration.toMillis(Duration.fromInputUnsafe(d)))

/** The nats.js configuration of a stream. */
export const toStreamConfig = (
  name: string,
  subjects: ReadonlyArray<string>,
  s: StreamSettings
): Partial<StreamConfig> & { name: string } => ({
  name,
  subjects: [...subjects],
  retention: s.retention === "interest"
    ? RetentionPolicy.Interest
    : s.retention === "workqueue"
    ? RetentionPolicy.Workqueue
    : RetentionPolicy.Limits,
  storage: s.storage === "memory" ? StorageType.Memory : StorageType.File,
  discard: s.discard === "new" ? DiscardPolicy.New : DiscardPolicy.Old,
  duplicate_window: nanosOf(s.duplicateWindow ?? "2 minutes"),
  ...(s.maxAge !== undefined ? { max_age: nanosOf(s.maxAge) } : {}),
  ...(s.maxMessages !== undefined ? { max_msgs: s.maxMessages } : {}),
  ...(s.maxBytes !== undefined ? { max_bytes: s.maxBytes } : {}),
  ...(s.maxMessageSize !== undefined ? { max_msg_size: s.maxMessageSize } : {}),
  ...(s.replicas !== undefined ? { num_replicas: s.replicas } : {})
})

/** Does a NATS subject pattern (with `*` and `>`) match a subject? */
export const subjectMatches = (pattern: string, subject: string): boolean => {
  const p = pattern.split(".")
  const s = subject.split(".")
  const tail = p.indexOf(">")
  if (tail !== -1) return s.length > tail && p.slice(0, tail).every((token, i) => token === "*" || token === s[i])
  return p.length === s.length && p.every((token, i) => token === "*" || token === s[i])
}

/** Creates a declared stream, or updates it in place. */
export const declareStream = (manager: JetStreamManager, declaration: StreamDeclaration) => {
  const cfg = toStreamConfig(declaration.name, declaration.subjects, declaration)
  return Effect.tryPromise({ try: () => manager.streams.info(declaration.name), catch: (cause) => cause }).pipe(
    Effect.matchEffect({
      onFailure: (cause) =>
        isApiError(cause, apiCodes.streamNotFound)
          ? Effect.tryPromise({ try: () => manager.streams.add(cfg), catch: (e) => e })
          : Effect.fail(cause),
      onSuccess: () => Effect.tryPromise({ try: () => manager.streams.update(declaration.name, cfg), catch: (e) => e })
    }),
    Effect.asVoid,
    Effect.mapError(subscribeError(declaration.name, `stream ${declaration.name}`))
  )
}

/** Deletes a stream; one that does not exist counts as deleted. */
export const deleteStream = (manager: JetStreamManager, name: string) =>
  Effect.tryPromise({ try: () => manager.streams.delete(name), catch: (cause) => cause }).pipe(
    Effect.catchIf((cause) => isApiError(cause, apiCodes.streamNotFound), () => Effect.void),
    Effect.asVoid,
    Effect.mapError(subscribeError(name, `deleting stream ${name}`))
  )

/** The streams of one broker: provisioned on first use, looked up without provisioning, forgotten. */
export interface Streams {
  readonly streamFor: (destination: string) => Effect.Effect<string, Errors.SubscribeError>
  readonly findStream: (destination: string) => Effect.Effect<Option.Option<string>, Errors.SubscribeError>
  /** Forgets one destination's stream (it was found missing). */
  readonly forget: (destination: string) => Effect.Effect<void>
  /** Forgets every stream (after a reconnect). */
  readonly forgetAll: Effect.Effect<void>
}

/** Makes the streams of one broker. */
export const makeStreams = Effect.fn("NatsBroker.streams")(function*(
  manager: JetStreamManager,
  declared: ReadonlyArray<StreamDeclaration>,
  defaults: StreamSettings
) {
  const names = new Map<string, string>()
  const declaredFor = (destination: string): string | undefined =>
    declared.find((decl) => decl.subjects.some((p) => subjectMatches(p, destination)))?.name
  const find = (destination: string) =>
    Effect.tryPromise({ try: () => manager.streams.find(destination), catch: (cause) => cause })
  const create = (destination: string) => {
    const name = sanitizeName(destination)
    return Effect.tryPromise({
      try: () => manager.streams.add(toStreamConfig(name, [destination], defaults)),
      catch: (cause) => cause
    }).pipe(Effect.as(name))
  }
  // Lost a race with another process, or the subject is covered by a stream created meanwhile: find it.
  const provision = (destination: string): Effect.Effect<string, Errors.SubscribeError> => {
    const known = declaredFor(destination)
    return (known !== undefined ? Effect.succeed(known) : find(destination).pipe(
      Effect.catch(() => create(destination).pipe(Effect.catch((cause) => Effect.mapError(find(destination), () => cause))))
    )).pipe(
      Effect.tap((name) => Effect.sync(() => names.set(destination, name))),
      Effect.mapError(subscribeError(destination, "provisioning"))
    )
  }
  const provisioner = yield* Provisioner.make({ declare: (destination: string) => Effect.asVoid(provision(destination)) })
  const streamFor = (destination: string): Effect.Effect<string, Errors.SubscribeError> =>
    provisioner.ensure(destination).pipe(Effect.andThen(Effect.suspend(() => {
      const name = names.get(destination)
      return name !== undefined ? Effect.succeed(name) : provision(destination)
    })))
  const findStream = (destination: string): Effect.Effect<Option.Option<string>, Errors.SubscribeError> => {
    const known = names.get(destination) ?? declaredFor(destination)
    if (known !== undefined) return Effect.succeed(Option.some(known))
    return find(destination).pipe(
      Effect.map(Option.some),
      Effect.catchIf((cause) => isApiError(cause, apiCodes.streamNotFound), () => Effect.succeed(Option.none())),
      Effect.mapError(subscribeError(destination, "stream lookup"))
    )
  }
  return {
    streamFor,
    findStream,
    forget: (destination) =>
      Effect.andThen(Effect.sync(() => names.delete(destination)), provisioner.invalidate(destination)),
    forgetAll: Effect.andThen(Effect.sync(() => names.clear()), provisioner.invalidateAll)
  } satisfies Streams
})

/** The durable consumer name of a group on a destination. */
export const durableName = (group: string, destination: string): string => sanitizeName(`${group}__${destination}`)

/** `maxDeliver` as the server is asked for it: one more (see `ConsumerSettings.maxDeliver`), -1 for unlimited. */
export const deliveryLimitOf = (s: ConsumerSettings): number | undefined =>
  s.maxDeliver === undefined || s.maxDeliver < 0 ? undefined : s.maxDeliver

/**
 * The durable pull consumer of a group: created, or (it exists with other settings, e.g. another prefetch)
 * updated in what can be updated.
 */
export const ensureConsumer = (
  manager: JetStreamManager,
  stream: string,
  destination: string,
  opts: Broker.SubscribeOptions,
  s: ConsumerSettings
): Effect.Effect<ConsumerInfo, unknown> => {
  const durable = durableName(opts.group, destination)
  const limit = deliveryLimitOf(s)
  const updatable = {
    ack_wait: nanosOf(s.ackWait ?? "30 seconds"),
    max_deliver: limit === undefined ? -1 : limit + 1,
    max_ack_pending: Math.max(1, opts.prefetch),
    ...(s.backoff !== undefined ? { backoff: s.backoff.map(nanosOf) } : {}),
    ...(s.inactiveThreshold !== undefined ? { inactive_threshold: nanosOf(s.inactiveThreshold) } : {})
  }
  return Effect.tryPromise({
    try: () =>
      manager.consumers.add(stream, {
        ...updatable,
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: opts.startFrom === "latest" ? DeliverPolicy.New : DeliverPolicy.All,
        filter_subject: destination
      }),
    catch: (cause) => cause
  }).pipe(
    Effect.catchIf(
      (cause) => isApiError(cause),
      () => Effect.tryPromise({ try: () => manager.consumers.update(stream, durable, updatable), catch: (cause) => cause })
    )
  )
}
