// A delivery without a broker, for the consumer stages' unit tests: it records how it was settled.
import { Effect, Result } from "effect"
import type { NackOptions } from "../../src/Broker.ts"
import type { Envelope } from "../../src/Envelope.ts"
import { AckError, DecodeError, reason } from "../../src/Errors.ts"
import type { Delivery } from "../../src/Subscriber.ts"

export type Settlement = { readonly _tag: "ack" } | { readonly _tag: "nack"; readonly options: NackOptions | undefined }

export interface Fake<A> {
  readonly delivery: Delivery<A>
  readonly settlements: Array<Settlement>
}

export interface FakeOptions {
  readonly envelope?: Partial<Envelope> | undefined
  readonly unknownType?: string | undefined
  readonly deliveryLimit?: number | undefined
  /** Settlements fail with this AckError (they are still recorded). */
  readonly failSettlements?: boolean | undefined
}

const encoder = new TextEncoder()

export const envelope = (fields: Partial<Envelope> = {}): Envelope => ({
  id: "m-1",
  idSource: "message",
  key: "k",
  headers: {},
  timestamp: 1_000,
  contentType: "application/json",
  payload: encoder.encode(`{"n":1}`),
  correlationId: undefined,
  causationId: undefined,
  attempt: 1,
  coordinates: { destination: "orders", partition: 0, offset: "0", lane: "0" },
  ...fields
})

const make = <A>(value: Result.Result<A, DecodeError>, options: FakeOptions = {}): Fake<A> => {
  const settlements: Array<Settlement> = []
  const settled = (settlement: Settlement) =>
    Effect.suspend(() => {
      settlements.push(settlement)
      return options.failSettlements === true
        ? Effect.fail(new AckError({ destination: "orders", reason: reason("BrokerClosed", "channel closed") }))
        : Effect.void
    })
  return {
    settlements,
    delivery: {
      envelope: envelope(options.envelope),
      value,
      unknownType: options.unknownType,
      deliveryLimit: options.deliveryLimit,
      ack: settled({ _tag: "ack" }),
      nack: (nackOptions) => settled({ _tag: "nack", options: nackOptions })
    }
  }
}

/** A decoded delivery of `value`. */
export const decoded = <A>(value: A, options?: FakeOptions): Fake<A> => make<A>(Result.succeed(value), options)

/** A delivery the codec rejected with `message`. */
export const undecodable = <A = never>(message: string, options?: FakeOptions): Fake<A> =>
  make<A>(Result.fail(new DecodeError({ destination: "orders", message })), options)
