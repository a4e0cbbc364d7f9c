/**
 * Pure parts: the envelope <-> entry mapping (round trips, foreign entries, reserved names, binary keys), the
 * reply readers, the error classification (server prefixes, client classes, socket codes, effect's
 * `RedisError` unwrapped), trim arguments, option resolution and configuration.
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Exit, Layer, Redacted } from "effect"
import { Redis } from "effect/persistence"
import { Envelope, Headers } from "@switchyard/core"
import { ConnectionTimeoutError, ErrorReply, SocketClosedUnexpectedlyError } from "redis"
import { fromEntry, toFields } from "../src/internal/envelope.ts"
import { isNoGroup, kindOf, reasonOf } from "../src/internal/errors.ts"
import * as Replies from "../src/internal/replies.ts"
import { RedisConnection, RedisTopology } from "../src/index.ts"

const asBuffers = (fields: ReadonlyArray<string | Buffer>): ReadonlyArray<Buffer> =>
  fields.map((f) => (typeof f === "string" ? Buffer.from(f, "utf8") : f))

const now = () => 1_800_000_000_000

describe("envelope mapping", () => {
  it("round-trips every field, payload bytes and a binary key", () => {
    const message: Envelope.OutgoingMessage = {
      ...Envelope.outgoing(Uint8Array.of(0, 255, 10, 13), {
        id: "m-1",
        key: "k",
        headers: { "x-a": "1", traceparent: "00-abc", "x-ü": "žluť" },
        timestamp: 1_700_000_000_123,
        contentType: "application/json",
        correlationId: "c",
        causationId: "d"
      }),
      keyBytes: Uint8Array.of(0xff, 1)
    }
    const envelope = fromEntry("orders", "1700000000999-0", asBuffers(toFields(message)), 3, now)
    assert.strictEqual(envelope.id, "m-1")
    assert.strictEqual(envelope.idSource, "message")
    assert.deepStrictEqual(envelope.payload, message.payload)
    assert.deepStrictEqual(envelope.keyBytes, Uint8Array.of(0xff, 1))
    assert.deepStrictEqual(envelope.headers, message.headers)
    assert.strictEqual(envelope.timestamp, 1_700_000_000_123)
    assert.strictEqual(envelope.contentType, "application/json")
    assert.strictEqual(envelope.correlationId, "c")
    assert.strictEqual(envelope.causationId, "d")
    assert.strictEqual(envelope.attempt, 3)
    assert.deepStrictEqual(envelope.coordinates, { destination: "orders", offset: "1700000000999-0" })
  })

  it("a text key round-trips as text; the default content type is not written", () => {
    const fields = toFields(Envelope.outgoing(new Uint8Array(), { id: "x", key: "customer-7", timestamp: 5 }))
    assert.isFalse(fields.includes(Headers.contentType))
    const envelope = fromEntry("s", "1-0", asBuffers(fields), 1, now)
    assert.strictEqual(envelope.key, "customer-7")
    assert.isUndefined(envelope.keyBytes)
    assert.strictEqual(envelope.contentType, "application/octet-stream")
  })

  it("headers with reserved names are not written over Switchyard's fields", () => {
    const fields = toFields(Envelope.outgoing(Uint8Array.of(1), { id: "x", headers: { payload: "evil", [Headers.messageId]: "spoof" } }))
    const envelope = fromEntry("s", "1-0", asBuffers(fields), 1, now)
    assert.deepStrictEqual(envelope.payload, Uint8Array.of(1))
    assert.strictEqual(envelope.id, "x")
    assert.deepStrictEqual(envelope.headers, {})
  })

  it("a foreign entry without Switchyard fields gets the kit's fallbacks; its fields become headers", () => {
    const envelope = fromEntry("s", "1700000000000-7", asBuffers(["order", "42", "__proto__", "p"]), 1, now)
    assert.strictEqual(envelope.id, "s/1700000000000-7")
    assert.strictEqual(envelope.idSource, "broker")
    assert.strictEqual(envelope.timestamp, 1_700_000_000_000)
    assert.strictEqual(envelope.payload.length, 0)
    assert.strictEqual(envelope.headers["order"], "42")
    assert.strictEqual(Object.getOwnPropertyDescriptor(envelope.headers, "__proto__")?.value, "p")
  })

  it("garbage metadata: blank id, bad timestamp, empty key, odd field count, repeated field (first wins)", () => {
    const envelope = fromEntry(
      "s",
      "1700000000000-0",
      asBuffers(["payload", "first", "payload", "second", Headers.messageId, " ", Headers.timestamp, "NaN", Headers.key, "", "dangling"]),
      0,
      now
    )
    assert.strictEqual(new TextDecoder().decode(envelope.payload), "first")
    assert.strictEqual(envelope.idSource, "broker")
    assert.strictEqual(envelope.timestamp, 1_700_000_000_000)
    assert.isUndefined(envelope.key)
    assert.strictEqual(envelope.attempt, 1)
  })
})

describe("reply readers", () => {
  it("reads XREADGROUP, XAUTOCLAIM and XPENDING replies, and nothing from odd shapes", () => {
    const entry = [Buffer.from("1-0"), [Buffer.from("payload"), Buffer.from("x")]]
    const deleted = [Buffer.from("2-0"), null]
    assert.deepStrictEqual(Replies.readGroup([Buffer.from("s"), [entry, deleted]]).map((e) => [e.id, e.fields?.length]), [["1-0", 2], ["2-0", undefined]])
    assert.deepStrictEqual(Replies.readGroup(null), [])
    assert.deepStrictEqual(Replies.readGroup("nonsense"), [])
    const claim = Replies.autoClaim([Buffer.from("5-0"), [entry], [Buffer.from("3-0")]])
    assert.strictEqual(claim.cursor, "5-0")
    assert.deepStrictEqual(claim.deleted, ["3-0"])
    assert.strictEqual(claim.claimed.length, 1)
    assert.strictEqual(Replies.deliveryCount([["1-0", "c", 10, 4]]), 4)
    assert.isUndefined(Replies.deliveryCount([]))
  })
})

describe("error classification", () => {
  it("server prefixes, client classes and socket codes become reasons; effect's RedisError is unwrapped", () => {
    assert.strictEqual(kindOf(new ErrorReply("NOGROUP No such key 's' or consumer group 'g'")), "NotFound")
    assert.strictEqual(kindOf(new ErrorReply("WRONGPASS invalid username-password pair")), "AuthenticationFailed")
    assert.strictEqual(kindOf(new ErrorReply("NOPERM this user has no permissions")), "AuthorizationFailed")
    assert.strictEqual(kindOf(new ErrorReply("WRONGTYPE Operation against a key holding the wrong kind of value")), "TopologyConflict")
    assert.strictEqual(kindOf(new ErrorReply("OOM command not allowed when used memory > 'maxmemory'")), "TooLarge")
    assert.strictEqual(kindOf(new ConnectionTimeoutError()), "Timeout")
    assert.strictEqual(kindOf(new SocketClosedUnexpectedlyError()), "BrokerClosed")
    assert.strictEqual(kindOf(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" })), "Unreachable")
    assert.strictEqual(kindOf(new Error("???")), "Unknown")
    const wrapped = new Redis.RedisError({ cause: new ErrorReply("NOGROUP No such key") })
    assert.isTrue(isNoGroup(wrapped))
    const reason = reasonOf(wrapped, "XREADGROUP")
    assert.strictEqual(reason._tag, "NotFound")
    assert.strictEqual(reason.code, "NOGROUP")
    assert.strictEqual(reason.message, "XREADGROUP: NOGROUP No such key")
  })
})

describe("options", () => {
  it("trim arguments from retention", () => {
    assert.deepStrictEqual(RedisTopology.trimArgsOf({ maxLen: 1000 }, 0), ["MAXLEN", "~", "1000"])
    assert.deepStrictEqual(RedisTopology.trimArgsOf({ maxLen: 5, exact: true }, 0), ["MAXLEN", "=", "5"])
    assert.deepStrictEqual(RedisTopology.trimArgsOf({ maxAge: "1 minute" }, 100_000), ["MINID", "~", "40000"])
    assert.deepStrictEqual(RedisTopology.trimArgsOf(undefined, 0), [])
  })

  it.effect("resolves defaults and refuses options that cannot work with reason Invalid", () =>
    Effect.gen(function*() {
      const resolved = yield* RedisConnection.resolve({ url: "redis://u:p@cache:6380/3" })
      assert.strictEqual(resolved.address, "cache:6380/3")
      assert.strictEqual(resolved.deliveryLimit, 10)
      const bads: ReadonlyArray<RedisConnection.Options> = [{ url: "http://x" }, { port: 0 }, { db: -1 }, { deliveryLimit: 0 }, { ackDeadline: "1 millis" }]
      for (const bad of bads) {
        const exit = yield* Effect.exit(RedisConnection.resolve(bad))
        assert.isTrue(Exit.isFailure(exit), JSON.stringify(bad))
        if (Exit.isFailure(exit)) assert.strictEqual(exit.cause.reasons[0]?._tag === "Fail" ? exit.cause.reasons[0].error.kind : "", "Invalid")
      }
    }))

  it("client options: URL parts, overrides, TLS from rediss://, secrets unwrapped only there", () => {
    const options = RedisConnection.clientOptions({ url: "rediss://alice:s%40cret@cache:6380/2", password: Redacted.make("override") })
    assert.strictEqual(options.password, "override")
    assert.strictEqual(options.username, "alice")
    assert.strictEqual(options.database, 2)
    assert.deepInclude(options.socket, { host: "cache", port: 6380, tls: true })
    const plain = RedisConnection.clientOptions({})
    assert.deepInclude(plain.socket, { host: "127.0.0.1", port: 6379 })
  })

  it.effect("config(prefix) reads the environment, the password redacted", () =>
    Effect.gen(function*() {
      const options = yield* RedisConnection.config("R").parse(ConfigProvider.fromEnvRecord({
        R_URL: "redis://127.0.0.1:6379",
        R_PASSWORD: "secret",
        R_ACK_DEADLINE: "5 seconds",
        R_DELIVERY_LIMIT: "3",
        R_DB: "1"
      }))
      assert.strictEqual(options.url, "redis://127.0.0.1:6379")
      assert.isTrue(Redacted.isRedacted(options.password))
      assert.strictEqual(options.deliveryLimit, 3)
      assert.strictEqual(options.db, 1)
      assert.isDefined(options.ackDeadline)
    }))
})

describe("topology", () => {
  it.effect("the default retention applies to undeclared streams, not to dead-letter streams; declared ones win", () =>
    Effect.scoped(Effect.gen(function*() {
      const context = yield* Layer.build(
        RedisTopology.layer.pipe(Layer.provide(RedisConnection.layer({
          url: process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379",
          defaultStream: { retention: { maxLen: 100 } },
          streams: { "orders.dlq": { retention: { maxLen: 5, exact: true } } }
        })))
      )
      const topology = Context.get(context, RedisTopology.RedisTopology)
      assert.deepStrictEqual(yield* topology.trimArgs("orders"), ["MAXLEN", "~", "100"])
      assert.deepStrictEqual(yield* topology.trimArgs("payments.dlq"), [])
      assert.deepStrictEqual(yield* topology.trimArgs("orders.dlq"), ["MAXLEN", "=", "5"])
    })))
})
