/**
 * What happened to one delivery: the value every consumer stage ends in. The frequent outcomes without
 * data are shared constants, so the per-message path allocates nothing for them.
 */
import { Data } from "effect"
import type { DecodeError, PublishError } from "../../Errors.ts"
import type { Failure, Form } from "../deadLetter.ts"

/** How a delivery ended. */
export type Outcome = Data.TaggedEnum<{
  /** The handler succeeded; the delivery was acked. */
  Handled: {}
  /** The group had finished this id already (idempotency); acked without running the handler. */
  Duplicate: {}
  /** Parked in the dead-letter destination (in `form`), then acked. */
  DeadLettered: { readonly destination: string; readonly form: Form; readonly failure: Failure }
  /**
   * Given back to the broker for a later delivery: dead-lettering is off (`error` undefined) or the dead
   * letter could not be published (`error`).
   */
  Nacked: { readonly failure: Failure; readonly error: PublishError | undefined }
  /** Undecodable and `onDecodeFailure: "skip"`: acked without running the handler. */
  Skipped: { readonly error: DecodeError }
  /** Acked without running the handler: an unknown event type, or a redriven copy for another group. */
  Ignored: { readonly reason: "unknown-type" | "redrive-for-another-group" }
}>

/** Constructors, `$is` and `$match` of {@link Outcome}. */
export const Outcome = Data.taggedEnum<Outcome>()

/** The shared `Handled` outcome. */
export const handled: Outcome = Outcome.Handled()
/** The shared `Duplicate` outcome. */
export const duplicate: Outcome = Outcome.Duplicate()
/** The shared `Ignored` outcome of an unknown event type. */
export const unknownType: Outcome = Outcome.Ignored({ reason: "unknown-type" })
/** The shared `Ignored` outcome of a redriven copy meant for another group. */
export const redriveForAnotherGroup: Outcome = Outcome.Ignored({ reason: "redrive-for-another-group" })

const labels = {
  Handled: "handled",
  Duplicate: "duplicate",
  DeadLettered: "dead-lettered",
  Nacked: "nacked",
  Skipped: "skipped",
  Ignored: "ignored"
} as const satisfies Record<Outcome["_tag"], string>

/** The `switchyard.outcome` span attribute of an outcome (`"handled"`, `"dead-lettered"`, …). */
export type Label = typeof labels[Outcome["_tag"]]

/** The label of an outcome, as spans and logs show it. */
export const label = (outcome: Outcome): Label => labels[outcome._tag]
