/**
 * The consumer's configuration, resolved once from the public `Consumer.Options` bag into one group per
 * concern. Each stage reads only its own group, and every default lives here.
 */
import { Duration, Schedule } from "effect"
import { type BrokerShape, defaultPrefetch, type StartFrom } from "../../Broker.ts"
import type { Options, Ordering } from "../../Consumer.ts"
import type { DecodeError, HandlerTimeoutError, SubscribeError } from "../../Errors.ts"
import type * as Idempotency from "../../Idempotency.ts"
import { defaultIsRetryable } from "./retry.ts"

/** What the consumer subscribes to, and how much it holds unacknowledged. */
export interface SubscriptionConfig {
  readonly destination: string
  readonly group: string
  readonly prefetch: number
  readonly startFrom: StartFrom | undefined
}

/** How many handlers run at once, and what order they keep. */
export interface LanesConfig {
  readonly concurrency: number
  readonly ordering: Ordering
  /** Buffer of each key lane (the prefetch: a lane never holds more than the subscription delivers). */
  readonly bufferSize: number
}

/** How a handler is run: its time limit and its retries. */
export interface RetryConfig<E> {
  readonly schedule: Schedule.Schedule<unknown, E | HandlerTimeoutError> | undefined
  readonly isRetryable: (error: E | HandlerTimeoutError) => boolean
  readonly handlerTimeout: Duration.Duration | undefined
}

/** Where what cannot be handled goes (`false`: nack, the broker redelivers). */
export interface DeadLetterConfig {
  readonly destination: string | false
  /** Delay of the nack when a dead letter could not be published. */
  readonly retryDelay: Duration.Duration
}

/** What to do with payloads the codec rejects. */
export interface DecodeConfig {
  readonly onFailure: "dead-letter" | "skip" | "fail"
  readonly onUnknownType: "dead-letter" | "ignore"
}

/** The resolved configuration of one consumer. */
export interface Config<E> {
  readonly subscription: SubscriptionConfig
  readonly lanes: LanesConfig
  readonly retry: RetryConfig<E>
  readonly deadLetter: DeadLetterConfig
  readonly decode: DecodeConfig
  /** The processed-id ledger's options; `undefined`: idempotency off. */
  readonly idempotency: Idempotency.Options | undefined
  /** Re-subscribe on a retryable subscription failure; `undefined`: the consumer fails. */
  readonly restart: Schedule.Schedule<unknown, SubscribeError | DecodeError> | undefined
  readonly drain: { readonly timeout: Duration.Duration }
  readonly tracing: { readonly context: "parent" | "link" }
}

const optionalDuration = (input: Duration.Input | undefined): Duration.Duration | undefined =>
  input === undefined ? undefined : Duration.fromInputUnsafe(input)

const retryOf = <E>(retry: Options<E>["retry"]): Omit<RetryConfig<E>, "handlerTimeout"> =>
  retry === undefined
    ? { schedule: undefined, isRetryable: defaultIsRetryable }
    : Schedule.isSchedule(retry)
    ? { schedule: retry, isRetryable: defaultIsRetryable }
    : { schedule: retry.schedule, isRetryable: retry.isRetryable ?? defaultIsRetryable }

const defaultDeadLetterRetryDelay = Duration.seconds(1)

const deadLetterOf = (destination: string, deadLetter: Options<unknown>["deadLetter"]): DeadLetterConfig =>
  deadLetter === false
    ? { destination: false, retryDelay: defaultDeadLetterRetryDelay }
    : typeof deadLetter === "string"
    ? { destination: deadLetter, retryDelay: defaultDeadLetterRetryDelay }
    : {
      destination: deadLetter?.destination ?? `${destination}.dlq`,
      retryDelay: deadLetter?.retryDelay === undefined ? defaultDeadLetterRetryDelay : Duration.fromInputUnsafe(deadLetter.retryDelay)
    }

/** Resolves the public options of a consumer of `destination` on `broker` (defaults as documented there). */
export const resolve = <E>(destination: string, options: Options<E>, broker: Pick<BrokerShape, "capabilities">): Config<E> => {
  const concurrency = Math.max(1, options.concurrency ?? 1)
  const prefetch = options.prefetch ?? defaultPrefetch(broker.capabilities, Math.max(16, concurrency * 4))
  return {
    subscription: { destination, group: options.group ?? "default", prefetch, startFrom: options.startFrom },
    lanes: { concurrency, ordering: options.ordering ?? "key", bufferSize: prefetch },
    retry: { ...retryOf(options.retry), handlerTimeout: optionalDuration(options.handlerTimeout) },
    deadLetter: deadLetterOf(destination, options.deadLetter),
    decode: { onFailure: options.decode?.onFailure ?? "dead-letter", onUnknownType: options.decode?.onUnknownType ?? "dead-letter" },
    idempotency: options.idempotency === undefined || options.idempotency === false
      ? undefined
      : options.idempotency === true
      ? {}
      : options.idempotency,
    restart: options.restart,
    drain: { timeout: Duration.fromInputUnsafe(options.drainTimeout ?? Duration.seconds(30)) },
    tracing: { context: options.traceContext ?? "parent" }
  }
}
