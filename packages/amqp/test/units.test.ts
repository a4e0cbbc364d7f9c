/**
 * The pure parts of the adapter, without a broker: error classification (every reply code, every errno
 * class, the handshake texts), the one header mapping, both ways, through amqplib's own property codec, and
 * the coalescing of a channel's acks against a model of the broker's outstanding deliveries.
 */
import { createRequire } from "node:module"
import * as Path from "node:path"
import { assert, describe, it } from "@effect/vitest"
import type { Message, Options as AmqpOptions } from "amqplib"
import { Envelope, Errors, Headers } from "@switchyard/core"
import fc from "fast-check"
import * as Delivery from "../src/internal/delivery.ts"
import * as AmqpEnvelope from "../src/internal/envelope.ts"
import * as AmqpErrors from "../src/internal/errors.ts"

const coded = (message: string, code: string | number) => Object.assign(new Error(message), { code })

describe("error classification", () => {
  const replyCodes: ReadonlyArray<readonly [number, Errors.ErrorKind, string]> = [
    [311, "TooLarge", "CONTENT_TOO_LARGE"],
    [312, "Unroutable", "NO_ROUTE"],
    [403, "AuthorizationFailed", "ACCESS_REFUSED - access to exchange 'x' in vhost '/' refused for user 'u'"],
    [404, "NotFound", "NOT_FOUND - no queue 'q' in vhost '/'"],
    [405, "TopologyConflict", "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'q'"],
    [406, "TopologyConflict", "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'x'"],
    [406, "TooLarge", "PRECONDITION_FAILED - message size 200000 is larger than configured max size 100000"],
    [530, "NotFound", "NOT_ALLOWED - vhost v not found"],
    [501, "Invalid", "FRAME_ERROR"],
    [502, "Invalid", "SYNTAX_ERROR"],
    [503, "Invalid", "COMMAND_INVALID"],
    [505, "Invalid", "UNEXPECTED_FRAME"],
    [540, "Invalid", "NOT_IMPLEMENTED"],
    [320, "BrokerClosed", "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"],
    [504, "BrokerClosed", "CHANNEL_ERROR"],
    [506, "BrokerClosed", "RESOURCE_ERROR"],
    [541, "BrokerClosed", "INTERNAL_ERROR"],
    [999, "Unknown", "SOMETHING_ELSE"]
  ]

  it("every AMQP reply code: its kind, the broker's text and the code", () => {
    for (const [code, kind, text] of replyCodes) {
      const message = `Channel closed by server: ${code} with message "${text}"`
      const reason = AmqpErrors.reasonOf(coded(message, code))
      assert.strictEqual(reason._tag, kind, `${code} ${text}`)
      assert.strictEqual(reason.message, message)
      assert.strictEqual(reason.code, code)
      assert.strictEqual(reason.isRetryable, Errors.isRetryableKind(kind))
    }
  })

  it("403 is a refused login in the handshake and a refused permission on an open connection", () => {
    const error = coded("ACCESS_REFUSED", 403)
    assert.strictEqual(AmqpErrors.reasonOf(error, "connect")._tag, "AuthenticationFailed")
    assert.strictEqual(AmqpErrors.reasonOf(error, "operation")._tag, "AuthorizationFailed")
  })

  it("errno classes: unreachable, timed out, TLS, anything else", () => {
    const cases: ReadonlyArray<readonly [string, Errors.ErrorKind]> = [
      ["ECONNREFUSED", "Unreachable"],
      ["EHOSTUNREACH", "Unreachable"],
      ["ENETUNREACH", "Unreachable"],
      ["ENOTFOUND", "Unreachable"],
      ["EAI_AGAIN", "Unreachable"],
      ["ECONNRESET", "Unreachable"],
      ["EPIPE", "Unreachable"],
      ["ETIMEDOUT", "Timeout"],
      ["ERR_TLS_CERT_ALTNAME_INVALID", "AuthenticationFailed"],
      ["CERT_HAS_EXPIRED", "AuthenticationFailed"],
      ["DEPTH_ZERO_SELF_SIGNED_CERT", "AuthenticationFailed"],
      ["SELF_SIGNED_CERT_IN_CHAIN", "AuthenticationFailed"],
      ["UNABLE_TO_VERIFY_LEAF_SIGNATURE", "AuthenticationFailed"],
      ["EACCES", "Unknown"]
    ]
    for (const [code, kind] of cases) {
      const reason = AmqpErrors.reasonOf(coded(`connect ${code} 127.0.0.1:5672`, code), "connect")
      assert.strictEqual(reason._tag, kind, code)
      assert.strictEqual(reason.code, code)
      assert.strictEqual(reason.message, `connect ${code} 127.0.0.1:5672`)
    }
  })

  it("the handshake texts: the reply code is read from amqplib's text", () => {
    const login = new Error(
      "Handshake terminated by server: 403 (ACCESS-REFUSED) with message \"ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN.\""
    )
    const refused = AmqpErrors.reasonOf(login, "connect")
    assert.strictEqual(refused._tag, "AuthenticationFailed")
    assert.strictEqual(refused.code, 403)
    assert.include(refused.message, "ACCESS_REFUSED - Login was refused")
    // the text alone says it was the handshake, whatever the caller thought
    assert.strictEqual(AmqpErrors.reasonOf(login, "operation")._tag, "AuthenticationFailed")

    const notAllowed = AmqpErrors.reasonOf(new Error("Handshake terminated by server: 530 (NOT-ALLOWED) with message \"NOT_ALLOWED\""), "connect")
    assert.strictEqual(notAllowed._tag, "NotFound")
    assert.strictEqual(notAllowed.code, 530)

    const vhost = new Error("Expected ConnectionOpenOk; got <ConnectionClose channel:0>")
    const missing = AmqpErrors.reasonOf(vhost, "connect", AmqpErrors.describe(vhost, { vhost: "orders", username: "ada" }))
    assert.strictEqual(missing._tag, "NotFound")
    assert.strictEqual(missing.code, 530)
    assert.include(missing.message, "NOT_ALLOWED (530)")
    assert.include(missing.message, "\"orders\"")
    assert.include(missing.message, "\"ada\"")
    assert.isFalse(missing.isRetryable)
  })

  it("what amqplib refuses to encode, a closed channel, and the rest", () => {
    const tooLarge = AmqpErrors.reasonOf(new RangeError("Header value exceeds the 65536 byte encoding buffer"))
    assert.strictEqual(tooLarge._tag, "TooLarge")
    assert.isFalse(tooLarge.isRetryable)
    assert.strictEqual(AmqpErrors.reasonOf(new RangeError("offset out of range"))._tag, "Invalid")
    assert.strictEqual(AmqpErrors.reasonOf(new TypeError("Field 'messageId' is the wrong type"))._tag, "Invalid")
    const closed = Object.assign(new Error("Channel closed"), { name: "IllegalOperationError" })
    assert.strictEqual(AmqpErrors.reasonOf(closed)._tag, "BrokerClosed")
    assert.isTrue(AmqpErrors.reasonOf(closed).isRetryable)
    const unknown = AmqpErrors.reasonOf("socket hang up")
    assert.strictEqual(unknown._tag, "Unknown")
    assert.strictEqual(unknown.message, "socket hang up")
    assert.strictEqual(unknown.code, undefined)
  })

  it("describe cuts secrets out of the text", () => {
    assert.strictEqual(
      AmqpErrors.describe(new Error("login as ada:s3cret refused"), { secrets: ["s3cret", ""] }),
      "login as ada:<redacted> refused"
    )
  })

  it("property: any reply code and text keep both; the kind is the table's", () => {
    fc.assert(fc.property(fc.integer({ min: 300, max: 599 }), fc.string(), (code, text) => {
      const reason = AmqpErrors.reasonOf(coded(text, code))
      return reason.code === code && reason.message === (text === "" ? "Error" : text) &&
        reason._tag === AmqpErrors.replyCodeKind(code, text)
    }))
  })
})

// amqplib's own property codec: what a publish's options become on the wire, and what a consumer reads back
const require = createRequire(import.meta.url)
const amqplibRoot = Path.dirname(require.resolve("amqplib"))
const defs = require(Path.join(amqplibRoot, "lib/defs.js")) as {
  encodeProperties: (id: number, channel: number, size: number, fields: unknown) => Buffer
  decode: (id: number, buffer: Buffer) => Message["properties"]
}
const args = require(Path.join(amqplibRoot, "lib/api_args.js")) as {
  publish: (exchange: string, routingKey: string, options: AmqpOptions.Publish) => unknown
}

/** A message as a consumer receives it after a publish with these options (through amqplib's codec). */
const overTheWire = (payload: Uint8Array, routingKey: string, options: AmqpOptions.Publish) => {
  const frame = defs.encodeProperties(60, 1, payload.byteLength, args.publish("orders", routingKey, options))
  // frame header (7) + class, weight, body size (12) ... frame end (1)
  const properties = defs.decode(60, frame.subarray(19, frame.length - 1))
  return {
    content: Buffer.from(payload),
    fields: { deliveryTag: 7, redelivered: false, exchange: "orders", routingKey, consumerTag: "c", messageCount: undefined },
    properties
  } as unknown as Message
}

const reserved = (name: string) =>
  name.startsWith("x-switchyard-") || name.startsWith("x-amqp-") || name.startsWith("x-death") ||
  name.startsWith("x-first-death") || name.startsWith("x-last-death") || name === "x-delivery-count" ||
  name === "CC" || name === "BCC" || name === "__proto__"

const text = (max: number) => fc.oneof(fc.string({ maxLength: max }), fc.string({ unit: "binary", maxLength: Math.floor(max / 2) }))
const nonBlank = (max: number) => text(max).filter((s) => s.trim() !== "")

const outgoing = fc.record({
  id: nonBlank(255),
  key: fc.option(text(100), { nil: undefined }),
  headers: fc.dictionary(fc.string({ minLength: 1, maxLength: 30 }).filter((name) => !reserved(name)), text(60), { maxKeys: 6 }),
  timestamp: fc.oneof(fc.integer({ min: 1, max: 9_999_999_999_999 }), fc.integer({ min: 1, max: 9_999_999_999 }).map((s) => s * 1000)),
  contentType: fc.string({ minLength: 1, maxLength: 80 }).filter((s) => s.trim() !== ""),
  payload: fc.uint8Array({ maxLength: 64 }),
  correlationId: fc.option(fc.oneof(nonBlank(40), fc.string({ minLength: 256, maxLength: 400 })), { nil: undefined }),
  causationId: fc.option(nonBlank(60), { nil: undefined })
}).map((m): Envelope.OutgoingMessage => ({ ...m }))

describe("the header mapping", () => {
  it("property: any OutgoingMessage → amqplib publish options → the wire → Draft → finish gives it back", () => {
    fc.assert(fc.property(outgoing, (message) => {
      const options = AmqpEnvelope.toPublishOptions(message, { mandatory: true })
      const received = overTheWire(message.payload, message.key ?? "", options)
      const envelope = AmqpEnvelope.toEnvelope(received, "orders", 1, () => 0)
      assert.strictEqual(envelope.id, message.id)
      assert.strictEqual(envelope.idSource, "message")
      assert.strictEqual(envelope.key, message.key)
      assert.deepStrictEqual(envelope.headers, message.headers)
      assert.strictEqual(envelope.timestamp, message.timestamp)
      assert.strictEqual(envelope.correlationId, message.correlationId)
      assert.strictEqual(envelope.causationId, message.causationId)
      assert.strictEqual(envelope.contentType, message.contentType)
      assert.deepStrictEqual(Array.from(envelope.payload), Array.from(message.payload))
      assert.strictEqual(envelope.attempt, 1)
    }), { numRuns: 500 })
  })

  it("native properties first: a plain message needs no header at all", () => {
    const message = Envelope.outgoing(new Uint8Array([1]), {
      id: "o-1",
      contentType: "application/json",
      timestamp: 1_700_000_000_000,
      correlationId: "c-1"
    })
    const options = AmqpEnvelope.toPublishOptions(message, { mandatory: false })
    assert.deepStrictEqual(options.headers, {})
    assert.strictEqual(options.messageId, "o-1")
    assert.strictEqual(options.timestamp, 1_700_000_000)
    assert.strictEqual(options.correlationId, "c-1")
    assert.strictEqual(options.contentType, "application/json")
    assert.isTrue(options.persistent)
  })

  it("headers only for what AMQP has no property for, or no room in one", () => {
    const longId = "é".repeat(200) // 400 UTF-8 bytes: past the 255-byte shortstr
    const longCorrelation = "c".repeat(300)
    const message = Envelope.outgoing(new Uint8Array(), {
      id: longId,
      key: "k",
      causationId: "cause",
      timestamp: 1_700_000_000_123,
      correlationId: longCorrelation
    })
    const options = AmqpEnvelope.toPublishOptions(message, { mandatory: true, attempt: 3 })
    assert.deepStrictEqual(Object.keys(options.headers ?? {}).sort(), [
      Headers.causationId,
      Headers.correlationId,
      Headers.messageId,
      Headers.key,
      Headers.timestamp,
      AmqpEnvelope.AmqpHeaders.attempt
    ].sort())
    assert.isAtMost(Buffer.byteLength(options.messageId ?? "", "utf8"), 255)
    assert.strictEqual(options.correlationId, undefined)
    const envelope = AmqpEnvelope.toEnvelope(overTheWire(new Uint8Array(), "k", options), "orders", 3, () => 0)
    assert.strictEqual(envelope.id, longId)
    assert.strictEqual(envelope.correlationId, longCorrelation)
    assert.strictEqual(envelope.timestamp, 1_700_000_000_123)
    assert.deepStrictEqual(envelope.headers, {})
  })

  it("x-amqp-* headers become the native properties (invalid values are not sent); reply-to and type come back", () => {
    const message = Envelope.outgoing(new Uint8Array(), {
      id: "n-1",
      timestamp: 1_700_000_000_000,
      headers: {
        [AmqpEnvelope.AmqpHeaders.replyTo]: "replies",
        [AmqpEnvelope.AmqpHeaders.type]: "OrderPlaced",
        [AmqpEnvelope.AmqpHeaders.priority]: "5",
        [AmqpEnvelope.AmqpHeaders.expiration]: "60000",
        "x-tenant": "acme"
      }
    })
    const options = AmqpEnvelope.toPublishOptions(message, { mandatory: true })
    assert.deepStrictEqual(
      { replyTo: options.replyTo, type: options.type, priority: options.priority, expiration: options.expiration, headers: options.headers },
      { replyTo: "replies", type: "OrderPlaced", priority: 5, expiration: "60000", headers: { "x-tenant": "acme" } }
    )
    const envelope = AmqpEnvelope.toEnvelope(overTheWire(new Uint8Array(), "", options), "orders", 1, () => 0)
    assert.deepStrictEqual(envelope.headers, {
      [AmqpEnvelope.AmqpHeaders.replyTo]: "replies",
      [AmqpEnvelope.AmqpHeaders.type]: "OrderPlaced",
      "x-tenant": "acme"
    })
    const invalid = AmqpEnvelope.toPublishOptions(
      Envelope.outgoing(new Uint8Array(), {
        id: "n-2",
        headers: { [AmqpEnvelope.AmqpHeaders.priority]: "300", [AmqpEnvelope.AmqpHeaders.expiration]: "-1" }
      }),
      { mandatory: true }
    )
    assert.strictEqual(invalid.priority, undefined)
    assert.strictEqual(invalid.expiration, undefined)
  })

  it("a foreign message without metadata gets the kit's fallbacks; a lone x-switchyard-id header is not its id", () => {
    const received = overTheWire(new Uint8Array([1, 2]), "eu", { headers: { [Headers.messageId]: "forged" } })
    const envelope = AmqpEnvelope.toEnvelope(received, "orders", 1, () => 42)
    assert.strictEqual(envelope.idSource, "generated")
    assert.notStrictEqual(envelope.id, "forged")
    assert.strictEqual(envelope.timestamp, 42)
    assert.strictEqual(envelope.contentType, "application/octet-stream")
    assert.strictEqual(envelope.key, undefined)
    assert.deepStrictEqual(envelope.coordinates, { destination: "orders", deliveryTag: 7, routingKey: "eu" })
  })
})

describe("the acks of a channel (basic.ack multiple)", () => {
  /** A channel as the broker sees it: the outstanding delivery tags; `multiple` settles every outstanding tag up to its own. */
  const brokerChannel = () => {
    const outstanding = new Set<number>()
    const acked: Array<number> = []
    const nacked: Array<number> = []
    const frames: Array<string> = []
    const settle = (into: Array<number>, tag: number, multiple: boolean) => {
      const tags = multiple ? [...outstanding].filter((t) => t <= tag) : [tag]
      for (const t of tags) {
        assert.isTrue(outstanding.delete(t), `tag ${t} settled twice or never delivered`)
        into.push(t)
      }
    }
    const channel: Delivery.AckChannel = {
      ack: (message, allUpTo) => {
        frames.push(`ack ${message.fields.deliveryTag}${allUpTo ? "+" : ""}`)
        settle(acked, message.fields.deliveryTag, allUpTo === true)
      },
      nack: (message, allUpTo) => {
        frames.push(`nack ${message.fields.deliveryTag}`)
        settle(nacked, message.fields.deliveryTag, allUpTo === true)
      }
    }
    return { outstanding, acked, nacked, frames, channel }
  }
  const delivery = (tag: number) => ({ fields: { deliveryTag: tag } }) as unknown as Message

  it("property: the broker acks exactly what the consumer acked and nacks what it nacked, whatever the order", () => {
    const plan = fc.integer({ min: 1, max: 60 }).chain((n) =>
      fc.tuple(
        fc.shuffledSubarray(Array.from({ length: n }, (_, i) => i + 1), { minLength: n, maxLength: n }),
        fc.array(fc.constantFrom("ack", "ack", "ack", "nack", "none"), { minLength: n, maxLength: n }),
        fc.array(fc.boolean(), { minLength: n, maxLength: n })
      ).map(([order, outcomes, flushes]) => ({ n, order, outcomes, flushes }))
    )
    fc.assert(fc.property(plan, ({ flushes, n, order, outcomes }) => {
      const broker = brokerChannel()
      const turns: Array<() => void> = []
      const acks = new Delivery.Acks(broker.channel, () => true, (flush) => void turns.push(flush))
      const endTurn = () => turns.splice(0).forEach((flush) => flush())
      for (let tag = 1; tag <= n; tag++) {
        broker.outstanding.add(tag)
        acks.delivered(delivery(tag))
      }
      const expectAcked: Array<number> = []
      const expectNacked: Array<number> = []
      order.forEach((tag, i) => {
        const outcome = outcomes[tag - 1]
        if (outcome === "ack") {
          acks.ack(delivery(tag))
          expectAcked.push(tag)
        } else if (outcome === "nack") {
          acks.nack(delivery(tag), true)
          expectNacked.push(tag)
        }
        if (flushes[i]) endTurn()
      })
      endTurn()
      const sorted = (tags: ReadonlyArray<number>) => [...tags].sort((a, b) => a - b)
      assert.deepStrictEqual(sorted(broker.acked), sorted(expectAcked))
      assert.deepStrictEqual(sorted(broker.nacked), sorted(expectNacked))
      // what the consumer left unsettled is still outstanding (never covered by a multiple ack)
      assert.deepStrictEqual(sorted([...broker.outstanding]), sorted(order.filter((tag) => outcomes[tag - 1] === "none")))
    }), { numRuns: 1000 })
  })

  it("contiguous acks of a turn are one basic.ack multiple; an ack above a delivery in flight goes alone", () => {
    const broker = brokerChannel()
    const turns: Array<() => void> = []
    const acks = new Delivery.Acks(broker.channel, () => true, (flush) => void turns.push(flush))
    for (let tag = 1; tag <= 6; tag++) acks.delivered(delivery(tag))
    for (let tag = 1; tag <= 6; tag++) broker.outstanding.add(tag)
    acks.ack(delivery(2))
    acks.ack(delivery(1))
    acks.ack(delivery(3))
    acks.ack(delivery(5)) // 4 is in flight
    assert.deepStrictEqual(broker.frames, [], "held until the end of the turn")
    assert.strictEqual(turns.length, 1, "one flush per turn")
    turns.splice(0).forEach((flush) => flush())
    assert.deepStrictEqual(broker.frames, ["ack 5", "ack 3+"])
    acks.ack(delivery(6))
    acks.nack(delivery(4), true) // the held ack goes first, then the nack
    assert.deepStrictEqual(broker.frames, ["ack 5", "ack 3+", "ack 6", "nack 4"])
    assert.deepStrictEqual(broker.outstanding.size, 0)
  })

  it("a channel that closed gets nothing: the broker redelivers what was held", () => {
    const broker = brokerChannel()
    const acks = new Delivery.Acks(broker.channel, () => false, () => undefined)
    acks.delivered(delivery(1))
    acks.ack(delivery(1))
    acks.flush()
    assert.deepStrictEqual(broker.frames, [])
  })
})
