/**
 * Error classification without a broker: nats.js's error classes and JetStream API codes become the
 * `Errors.Reason` kinds, keeping the server's own text and code; secrets are redacted.
 */
import { JetStreamApiError } from "@nats-io/jetstream"
import { jserrors } from "@nats-io/jetstream/internal"
import {
  AuthorizationError,
  ClosedConnectionError,
  ConnectionError,
  DrainingConnectionError,
  InvalidArgumentError,
  InvalidSubjectError,
  NoRespondersError,
  PermissionViolationError,
  RequestError,
  TimeoutError
} from "@nats-io/transport-node"
import { assert, describe, it } from "vitest"
import { kindOf, publishReasonOf, reasonOf, redact, redactCause, redactUrl, urlSecrets } from "../src/internal/errors.ts"

const apiError = (errCode: number, status: number, description: string) =>
  new JetStreamApiError({ err_code: errCode, code: status, description })

describe("NATS error classification", () => {
  it("JetStream API errors by err_code, else by status; the server's text and code kept", () => {
    const tooLarge = reasonOf(apiError(10054, 400, "message size exceeds maximum allowed"))
    assert.strictEqual(tooLarge._tag, "TooLarge")
    assert.strictEqual(tooLarge.message, "message size exceeds maximum allowed")
    assert.strictEqual(tooLarge.code, 10054)
    assert.isFalse(tooLarge.isRetryable)
    assert.strictEqual(kindOf(apiError(10097, 400, "header size exceeds maximum allowed of 64k")), "TooLarge")
    assert.strictEqual(kindOf(apiError(10059, 404, "stream not found")), "NotFound")
    assert.strictEqual(kindOf(apiError(10014, 404, "consumer not found")), "NotFound")
    assert.strictEqual(kindOf(apiError(10058, 400, "stream name already in use with a different configuration")), "TopologyConflict")
    assert.strictEqual(kindOf(apiError(10065, 400, "subjects overlap with an existing stream")), "TopologyConflict")
    assert.strictEqual(kindOf(apiError(1, 503, "unavailable")), "Unreachable")
    assert.strictEqual(kindOf(apiError(1, 408, "timeout")), "Timeout")
    assert.strictEqual(kindOf(apiError(1, 409, "conflict")), "TopologyConflict")
    assert.strictEqual(kindOf(apiError(1, 400, "bad request")), "Invalid")
    assert.strictEqual(kindOf(apiError(1, 500, "internal")), "Unknown")
  })

  it("client errors by class", () => {
    assert.strictEqual(kindOf(new TimeoutError()), "Timeout")
    assert.strictEqual(kindOf(new NoRespondersError("orders")), "NotFound")
    assert.strictEqual(kindOf(new RequestError("no responders", { cause: new NoRespondersError("orders") })), "NotFound")
    assert.strictEqual(kindOf(new RequestError("failed", { cause: new TimeoutError() })), "Timeout")
    assert.strictEqual(
      kindOf(new jserrors.JetStreamNotEnabled("jetstream is not enabled", { cause: new NoRespondersError("x") })),
      "NotFound"
    )
    assert.strictEqual(kindOf(new AuthorizationError("Authorization Violation")), "AuthenticationFailed")
    assert.strictEqual(kindOf(new PermissionViolationError("denied", "publish", "orders")), "AuthorizationFailed")
    assert.strictEqual(kindOf(new ClosedConnectionError()), "BrokerClosed")
    assert.strictEqual(kindOf(new DrainingConnectionError()), "BrokerClosed")
    assert.strictEqual(kindOf(new ConnectionError("connection refused")), "Unreachable")
    assert.strictEqual(kindOf(new InvalidSubjectError("a b")), "Invalid")
    assert.strictEqual(kindOf(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })), "Unreachable")
    assert.strictEqual(kindOf(new Error("wrapped", { cause: new TimeoutError() })), "Timeout")
    assert.strictEqual(kindOf(new Error("what")), "Unknown")
    assert.strictEqual(kindOf("a string"), "Unknown")
  })

  it("a refused publish is TooLarge only when the size check says so", () => {
    const refused = new InvalidArgumentError("payload too large")
    assert.strictEqual(publishReasonOf(refused, () => true)._tag, "TooLarge")
    assert.strictEqual(publishReasonOf(refused, () => false)._tag, "Invalid")
    assert.strictEqual(publishReasonOf(refused, () => true, "message 2 of 3 (m-2): payload too large").message, "message 2 of 3 (m-2): payload too large")
  })

  it("secrets are removed from URLs, texts and causes", () => {
    assert.strictEqual(redactUrl("nats://svc:pa55@host:4222"), "nats://svc:<redacted>@host:4222")
    assert.strictEqual(redactUrl("nats://t0ken@host"), "nats://<redacted>@host")
    assert.strictEqual(redactUrl("nats://host:4222"), "nats://host:4222")
    assert.deepStrictEqual(urlSecrets("nats://svc:p%40ss@host"), ["p%40ss", "p@ss"])
    assert.deepStrictEqual(urlSecrets("nats://host"), [])
    assert.strictEqual(redact("bad password pa55 for pa55", ["pa55"]), "bad password <redacted> for <redacted>")
    const copy = redactCause(new Error("seed SUAB", { cause: new Error("inner SUAB") }), ["SUAB"])
    assert.strictEqual(copy.message, "seed <redacted>")
    assert.strictEqual((copy.cause as Error).message, "inner <redacted>")
  })
})
