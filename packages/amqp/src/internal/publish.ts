/**
 * The publish path: one confirm channel per connection (supervised, opened on first use). A batch is written
 * in one synchronous loop without waiting (pipelined, honouring the channel's `drain`), and its confirms are
 * counted as amqplib calls back (no per-message effect); once every written message is confirmed, a broker
 * nack, a refused frame (nothing after it is written) or the channel closing fail the batch with the broker's
 * reason (the first by position), and only what may
 * succeed on a new channel (a retryable reason) is sent again, on the reconnect schedule, skipping what was
 * confirmed. Messages are persistent; under `mandatory` a message no queue is bound for comes back as a
 * `basic.return` before its confirm, and is logged, dropped or failed as `unroutable` says.
 */
import type { ConfirmChannel, ConsumeMessage } from "amqplib"
import type { Envelope } from "@switchyard/core"
import { Errors } from "@switchyard/core"
import type { Scope } from "effect"
import { Duration, Effect, Result } from "effect"
import type * as AmqpConnection from "../AmqpConnection.ts"
import * as Channels from "./channel.ts"
import * as AmqpEnvelope from "./envelope.ts"
import * as AmqpErrors from "./errors.ts"

/** What happens to a message no queue is bound for (see `AmqpBroker.Options.unroutable`). */
export type Unroutable = "warn" | "drop" | "fail"

/** The publisher's channel: the confirm channel and the ids the broker returned as unroutable. */
interface Publisher extends Channels.Watched<ConfirmChannel> {
  readonly returned: Map<string, number>
}

/** Where a batch goes. */
export interface Target {
  readonly destination: string
  readonly exchange: string
  /** The routing key of every message (default: each message's key). */
  readonly routingKey?: string | undefined
  /** The attempt carried by a delayed retry's copy. */
  readonly attempt?: number | undefined
}

/** The publish path of one broker. */
export interface Publish {
  /** `confirmed`: called with a message's index as the broker confirms it (`Broker.OnConfirmed`). */
  readonly publish: (
    target: Target,
    messages: ReadonlyArray<Envelope.OutgoingMessage>,
    confirmed?: (index: number) => void
  ) => Effect.Effect<void, Errors.PublishError>
}

const trackReturns = (watched: Channels.Watched<ConfirmChannel>): Publisher => {
  const publisher: Publisher = { ...watched, returned: new Map() }
  // every in-flight batch waits on the channel's drain
  publisher.channel.setMaxListeners(0)
  publisher.channel.on("return", (msg: ConsumeMessage) => {
    const id = AmqpEnvelope.headerString(msg.properties.messageId)
    if (id !== undefined) publisher.returned.set(id, (publisher.returned.get(id) ?? 0) + 1)
  })
  return publisher
}

/** Whether the broker returned (one copy of) the message with this `message-id`. */
const takeReturned = (publisher: Publisher, messageId: string): boolean => {
  const returns = publisher.returned.get(messageId)
  if (returns === undefined) return false
  if (returns <= 1) publisher.returned.delete(messageId)
  else publisher.returned.set(messageId, returns - 1)
  return true
}

/** Why the channel closed: the broker's reply code and text when it closed it, else a retryable close. */
const closedReason = (publisher: Publisher, cause?: unknown): Errors.Reason => {
  const error = publisher.errors.find((e) => AmqpErrors.codeOf(e) !== undefined) ?? cause
  return error === undefined || AmqpErrors.codeOf(error) === undefined
    ? Errors.reason("BrokerClosed", "channel closed before confirming")
    : AmqpErrors.reasonOf(error)
}

const nackReason = (publisher: Publisher, error: unknown): Errors.Reason =>
  !Channels.isOpen(publisher) || (error instanceof Error && error.message === "channel closed")
    ? closedReason(publisher, error)
    : Errors.reason("Unknown", `message nacked by the broker: ${AmqpErrors.describe(error)}`)

/** amqplib refused to encode the frame (nothing was written), or the channel is already closed. */
const writeReason = (publisher: Publisher, message: Envelope.OutgoingMessage, error: unknown): Errors.Reason => {
  const reason = AmqpErrors.reasonOf(error)
  return reason._tag === "BrokerClosed"
    ? closedReason(publisher, error)
    : AmqpErrors.reasonOf(error, "operation", `message ${message.id}: ${AmqpErrors.describe(error)}`)
}

/** The state of one publish run, shared by its retries (an Effect value may be run again). */
interface Run {
  readonly confirmed: Array<boolean>
  readonly returned: Array<string>
  /** Told of each message as it is confirmed. */
  readonly onConfirmed: ((index: number) => void) | undefined
}

/** One attempt at a batch: the messages not yet confirmed, written in order, and their confirms as they arrive. */
interface Attempt {
  readonly pending: ReadonlyArray<number>
  /** The next of `pending` to write; writing stops at the end or at the first refused frame. */
  next: number
  written: number
  settled: number
  /** The first failure by position in the batch (a refused frame, a nack, an unroutable message under "fail"). */
  failure: { readonly index: number; readonly reason: Errors.Reason } | undefined
}

const failAt = (attempt: Attempt, index: number, reason: Errors.Reason): void => {
  if (attempt.failure === undefined || index < attempt.failure.index) attempt.failure = { index, reason }
}

/** What one batch writes to: where it goes and what happens to its confirms. */
interface Batch {
  readonly publisher: Publisher
  readonly target: Target
  readonly messages: ReadonlyArray<Envelope.OutgoingMessage>
  readonly run: Run
  readonly unroutable: Unroutable
  readonly attempt: Attempt
  /** Called after each confirm and when writing stopped: completes the attempt once both are done. */
  readonly done: () => void
}

const confirm = (run: Run, index: number): void => {
  run.confirmed[index] = true
  run.onConfirmed?.(index)
}

/** The confirm (or nack) of one message; the broker returned it before when no queue was bound for it. */
const onConfirm = (batch: Batch, index: number, messageId: string) => (error: unknown) => {
  const { attempt, publisher, run } = batch
  attempt.settled++
  if (error) failAt(attempt, index, nackReason(publisher, error))
  else if (!takeReturned(publisher, messageId)) confirm(run, index)
  else if (batch.unroutable === "fail") {
    failAt(attempt, index, Errors.reason("Unroutable", `message ${batch.messages[index]!.id} is unroutable (no queue bound)`, 312))
  } else {
    run.returned.push(batch.messages[index]!.id)
    confirm(run, index)
  }
  batch.done()
}

/**
 * Writes what is left of the batch without waiting for confirms (pipelined), in one synchronous loop, until
 * amqplib's buffer is full (then again on `drain`) or a frame is refused (nothing more is written).
 */
const pump = (batch: Batch, onDrain: () => void): void => {
  const { attempt, messages, publisher, target } = batch
  const mandatory = batch.unroutable !== "drop"
  const { exchange, routingKey } = target
  while (attempt.next < attempt.pending.length) {
    const index = attempt.pending[attempt.next++]!
    const message = messages[index]!
    const options = AmqpEnvelope.toPublishOptions(message, { mandatory, attempt: target.attempt })
    const written = Result.try(() =>
      publisher.channel.publish(
        exchange,
        routingKey ?? message.key ?? "",
        AmqpEnvelope.toBuffer(message.payload),
        options,
        onConfirm(batch, index, options.messageId ?? "")
      )
    )
    if (Result.isFailure(written)) {
      failAt(attempt, index, writeReason(publisher, message, written.failure))
      attempt.next = attempt.pending.length
    } else {
      attempt.written++
      if (!written.success) return void publisher.channel.once("drain", onDrain)
    }
  }
  batch.done()
}

/**
 * Sends what is not yet confirmed of a batch and awaits the confirms, or the channel's close (amqplib's
 * `close` listener: no fiber raced per call).
 */
const send = (
  publisher: Publisher,
  target: Target,
  messages: ReadonlyArray<Envelope.OutgoingMessage>,
  run: Run,
  unroutable: Unroutable
): Effect.Effect<void, Errors.Reason> =>
  Effect.callback<void, Errors.Reason>((resume) => {
    if (!Channels.isOpen(publisher)) return resume(Effect.fail(closedReason(publisher)))
    const pending: Array<number> = []
    for (let index = 0; index < messages.length; index++) if (!run.confirmed[index]) pending.push(index)
    const attempt: Attempt = { pending, next: 0, written: 0, settled: 0, failure: undefined }
    const { channel } = publisher
    const detach = () => {
      channel.off("drain", onDrain)
      channel.off("close", onClose)
    }
    const finish = (outcome: Effect.Effect<void, Errors.Reason>) => {
      detach()
      resume(outcome)
    }
    const done = () => {
      if (attempt.next < pending.length || attempt.settled < attempt.written) return
      finish(attempt.failure === undefined ? Effect.void : Effect.fail(attempt.failure.reason))
    }
    const batch: Batch = { publisher, target, messages, run, unroutable, attempt, done }
    const onDrain = () => pump(batch, onDrain)
    // the channel's own close listener (Channels.watch) ran first: its errors hold the broker's reason
    const onClose = () => finish(Effect.fail(closedReason(publisher)))
    channel.once("close", onClose)
    pump(batch, onDrain)
    return Effect.sync(detach)
  })

/** Logs unroutable messages under `unroutable: "warn"`: the first per destination, then every 1000th. */
const unroutableWarner = () => {
  const counts = new Map<string, number>()
  return (destination: string, ids: ReadonlyArray<string>): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (ids.length === 0) return Effect.void
      const before = counts.get(destination) ?? 0
      const after = before + ids.length
      counts.set(destination, after)
      if (before !== 0 && Math.floor(before / 1000) === Math.floor(after / 1000)) return Effect.void
      return Effect.logWarning(
        `${after} message(s) to ${destination} were dropped by RabbitMQ since start, e.g. ${ids[0]}: no queue is ` +
          `bound to the exchange (no consumer group has subscribed yet). Declare the group's queue in the topology ` +
          `(AmqpTopology.consumerGroup) to keep them, or set unroutable: "drop" or "fail".`
      )
    })
}

/** Builds the publish path on a connection, in the current scope (closing it waits for outstanding confirms, bounded). */
export const make = Effect.fn("AmqpPublish.make")(function*(
  connection: AmqpConnection.AmqpConnectionShape,
  options: { readonly unroutable: Unroutable; readonly timeout: Duration.Duration }
): Effect.fn.Return<Publish, never, Scope.Scope> {
  const publisher = yield* Channels.lazy(
    Channels.supervise(
      connection,
      connection.openConfirmChannel,
      (watched) => Effect.sync(() => trackReturns(watched)),
      (channel) => channel.waitForConfirms()
    )
  )
  const current = Effect.flatMap(publisher, (open) => open)
  const warn = unroutableWarner()
  const timeoutMillis = Duration.toMillis(options.timeout)

  const publish: Publish["publish"] = (target, messages, confirmed) =>
    Effect.suspend(() => {
      const run: Run = { confirmed: messages.map(() => false), returned: [], onConfirmed: confirmed }
      const publishError = (reason: Errors.Reason) => new Errors.PublishError({ destination: target.destination, reason })
      const once = current.pipe(
        Effect.mapError((e) => e.reason),
        Effect.flatMap((p) => send(p, target, messages, run, options.unroutable))
      )
      return once.pipe(
        Effect.retry({ schedule: connection.reconnectSchedule, while: (reason) => reason.isRetryable }),
        Effect.mapError(publishError),
        Effect.timeoutOrElse({
          duration: options.timeout,
          orElse: () => Effect.fail(publishError(Errors.reason("Timeout", `not confirmed within ${timeoutMillis}ms`)))
        }),
        Effect.tap(() => warn(target.destination, run.returned))
      )
    })

  return { publish }
})
