/**
 * The JSON form of a dead letter (`dlq list --json`, `dlq show --json`).
 *
 * @since 0.1.0
 */
import type { DeadLetters } from "@switchyard/core"
import { Result } from "effect"
import * as Topics from "../../Topics.ts"

/**
 * A dead letter as plain JSON: the original id, the dead letter's own id, group, reason, error tag, attempts,
 * when, origin, form, key, original headers, and the value (or the payload text when it is not JSON).
 *
 * @example
 * ```ts
 * import type { DeadLetters } from "@switchyard/core"
 * import { DlqJson } from "@switchyard/cli"
 * declare const deadLetter: DeadLetters.DeadLetter<unknown>
 * const line = JSON.stringify(DlqJson.toJson(deadLetter))
 * ```
 * @since 0.1.0
 */
export const toJson = (deadLetter: DeadLetters.DeadLetter<unknown>) => ({
  id: deadLetter.original.id,
  deadLetterId: deadLetter.envelope.id,
  group: deadLetter.originGroup,
  reason: deadLetter.reason,
  errorTag: deadLetter.errorTag,
  attempts: deadLetter.attempts,
  deadLetteredAt: deadLetter.deadLetteredAt,
  originDestination: deadLetter.originDestination,
  originCoordinates: deadLetter.originCoordinates,
  form: deadLetter.form,
  redrivable: deadLetter.redrivable,
  key: deadLetter.original.key ?? null,
  headers: deadLetter.original.headers,
  ...(Result.isSuccess(deadLetter.value)
    ? { value: deadLetter.value.success }
    : { undecodable: deadLetter.value.failure.message, payload: Topics.text(deadLetter.original.payload) })
})
