import { assert, describe, it, layer } from "@effect/vitest"
import { Broker } from "@switchyard/core"
import { ConfigProvider, Effect, Exit, Layer, Redacted, Schema, Scope } from "effect"
import { AmqpBroker, AmqpConnection, AmqpRpc } from "../src/index.ts"
import { collect, message, options, rabbitmqctl, takeN, text, unique } from "./helpers.ts"

const encoder = new TextEncoder()

describe("AmqpConnection", () => {
  it.live("a wrong password is a ConnectionError, quickly, without the secret", () =>
    Effect.gen(function*() {
      const secret = "not-the-password-4711"
      const start = Date.now()
      const error = yield* Effect.flip(
        Layer.build(AmqpBroker.layer({ ...options, password: Redacted.make(secret), connectTimeout: "5 seconds" }))
      )
      const elapsed = Date.now() - start
      assert.strictEqual(error._tag, "ConnectionError")
      // refused at the handshake, not retried until the 5 s connect timeout (it takes a few ms)
      assert.isBelow(elapsed, 2000)
      assert.notInclude(error.reason.message, "timed out")
      assert.match(error.reason.message, /ACCESS.REFUSED/)
      assert.notInclude(error.message, secret)
      assert.notInclude(JSON.stringify(error), secret)
      assert.notInclude(String(error.cause ?? ""), secret)
    }))

  it.live("an unreachable broker is a ConnectionError within the connect timeout (a refused port at once, kind Unreachable)", () =>
    Effect.gen(function*() {
      const start = Date.now()
      const error = yield* Effect.flip(Layer.build(AmqpBroker.layer({ ...options, port: 1, connectTimeout: "1500 millis" })))
      assert.strictEqual(error._tag, "ConnectionError")
      assert.strictEqual(error.kind, "Unreachable")
      assert.include(error.message, "ECONNREFUSED")
      assert.isBelow(Date.now() - start, 4000)
    }))

  it.live("layerConfig reads the environment (URL with a redacted password)", () =>
    Effect.gen(function*() {
      const destination = unique("config")
      const provider = ConfigProvider.fromEnv({
        env: { ORDERS_AMQP_URL: "amqp://guest:guest@127.0.0.1:5672/%2F", ORDERS_AMQP_CONNECTION_NAME: "from-config" }
      })
      yield* Effect.gen(function*() {
        const q = yield* collect(destination, "g")
        const broker = yield* Broker.Broker
        yield* broker.publish(destination, [message("cfg-1", "hi")])
        const [d] = yield* takeN(q, 1)
        assert.strictEqual(text(d!.envelope), "hi")
        const connection = yield* AmqpConnection.AmqpConnection
        assert.strictEqual(connection.label, "amqp://guest@127.0.0.1:5672/%2F")
      }).pipe(
        Effect.provide(AmqpBroker.layerConfig(AmqpBroker.config("ORDERS_AMQP")).pipe(Layer.provide(ConfigProvider.layer(provider))))
      )
    }))

  it.live("layerConfig: missing password in URL-less config falls back to guest; bad port is a ConnectionError", () =>
    Effect.gen(function*() {
      // no URL, no username, no password: connects as guest/guest (a wrong password would fail the Layer)
      const guest = ConfigProvider.fromEnv({
        env: { AMQP_HOST: options.hostname!, AMQP_PORT: String(options.port), AMQP_CONNECT_TIMEOUT: "5 seconds" }
      })
      yield* Effect.gen(function*() {
        const connection = yield* AmqpConnection.AmqpConnection
        assert.strictEqual(connection.label, `amqp://guest@${options.hostname}:${options.port}/%2F`)
        const live = yield* connection.current
        assert.isAtLeast(live.generation, 1)
      }).pipe(
        Effect.provide(AmqpBroker.layerConfig().pipe(Layer.provide(ConfigProvider.layer(guest))))
      )
      const provider = ConfigProvider.fromEnv({ env: { AMQP_PORT: "not-a-port" } })
      const error = yield* Effect.flip(
        Layer.build(AmqpBroker.layerConfig().pipe(Layer.provide(ConfigProvider.layer(provider))))
      )
      assert.strictEqual(error._tag, "ConnectionError")
      assert.strictEqual(error.kind, "Invalid")
      assert.isFalse(error.isRetryable)
      assert.include(error.reason.message, "invalid configuration")
      assert.include(error.reason.message, "AMQP_PORT")
    }))
})

const topologyName = unique("topo")
const TopologyLive = AmqpBroker.layer({
  ...options,
  topology: {
    exchanges: [{ name: `${topologyName}.fanout`, type: "fanout" }, { name: `${topologyName}.direct`, type: "direct" }],
    queues: [
      {
        name: `${topologyName}.quorum`,
        type: "quorum",
        deliveryLimit: 5,
        deadLetterExchange: "",
        deadLetterRoutingKey: `${topologyName}.classic`
      },
      { name: `${topologyName}.classic`, messageTtl: 60_000, maxLength: 1000, singleActiveConsumer: true },
      { name: `${topologyName}.fanout.g`, type: "quorum" }
    ],
    bindings: [
      { source: `${topologyName}.direct`, destination: `${topologyName}.quorum`, pattern: "blue" },
      { source: `${topologyName}.fanout`, destination: `${topologyName}.fanout.g`, pattern: "" }
    ]
  }
})

layer(TopologyLive, { excludeTestServices: true, timeout: "30 seconds" })("Topology as data", (it) => {
  it.effect("declares exchanges, queues (classic/quorum, arguments) and bindings at start", () =>
    Effect.gen(function*() {
      const listed = (args: ReadonlyArray<string>) =>
        rabbitmqctl(...args, "--quiet", "--formatter", "json").pipe(
          Effect.map((out) => (JSON.parse(out) as Array<Record<string, unknown>>))
        )
      const ours = (name: unknown) => typeof name === "string" && name.startsWith(`${topologyName}.`)
      // rabbitmqctl renders arguments as [name, type, value] triples
      const args = (raw: unknown) =>
        Object.fromEntries((raw as Array<[string, string, unknown]>).map(([name, , value]) => [name, value]))

      const exchanges = (yield* listed(["list_exchanges", "name", "type", "durable"])).filter((e) => ours(e["name"]))
      assert.sameDeepMembers(exchanges, [
        { name: `${topologyName}.fanout`, type: "fanout", durable: true },
        { name: `${topologyName}.direct`, type: "direct", durable: true }
      ])

      const queues = (yield* listed(["list_queues", "name", "type", "durable", "arguments"]))
        .filter((q) => ours(q["name"]))
        .map((q) => ({ name: q["name"], type: q["type"], durable: q["durable"], arguments: args(q["arguments"]) }))
      assert.sameDeepMembers(queues, [
        {
          name: `${topologyName}.quorum`,
          type: "quorum",
          durable: true,
          arguments: {
            "x-queue-type": "quorum",
            "x-delivery-limit": 5,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": `${topologyName}.classic`
          }
        },
        {
          name: `${topologyName}.classic`,
          type: "classic",
          durable: true,
          arguments: { "x-message-ttl": 60_000, "x-max-length": 1000, "x-single-active-consumer": true }
        },
        { name: `${topologyName}.fanout.g`, type: "quorum", durable: true, arguments: { "x-queue-type": "quorum" } }
      ])

      const bindings = (yield* listed(["list_bindings", "source_name", "destination_name", "destination_kind", "routing_key"]))
        .filter((b) => ours(b["source_name"]))
      assert.sameDeepMembers(bindings, [
        {
          source_name: `${topologyName}.direct`,
          destination_name: `${topologyName}.quorum`,
          destination_kind: "queue",
          routing_key: "blue"
        },
        {
          source_name: `${topologyName}.fanout`,
          destination_name: `${topologyName}.fanout.g`,
          destination_kind: "queue",
          routing_key: ""
        }
      ])

      // re-declaring the same topology is idempotent
      const connection = yield* AmqpConnection.AmqpConnection
      yield* connection.declare(connection.topology)
    }))

  it.effect("user-declared topology takes precedence over auto-provisioning (a fanout destination with a quorum group queue)", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const q = yield* collect(`${topologyName}.fanout`, "g")
      yield* broker.publish(`${topologyName}.fanout`, [message("t-1", "fan", { key: "any-key" })])
      const [d] = yield* takeN(q, 1)
      assert.strictEqual(d!.envelope.id, "t-1")
      assert.strictEqual(d!.envelope.key, "any-key")
    }))
})

layer(AmqpBroker.layer(options), { excludeTestServices: true, timeout: "30 seconds" })("AmqpRpc", (it) => {
  it.effect("request-reply over direct reply-to, matched by correlation id", () =>
    Effect.gen(function*() {
      const rpc = yield* AmqpRpc.AmqpRpc
      const destination = unique("rpc")
      yield* rpc.serve(destination, (req) => Effect.succeed(encoder.encode(`echo:${new TextDecoder().decode(req.payload)}`)))
      const replies = yield* Effect.forEach(
        ["a", "b", "c", "d"],
        (s) => rpc.request(destination, { payload: encoder.encode(s), timeout: "5 seconds" }),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(replies.map((r) => new TextDecoder().decode(r.payload)), ["echo:a", "echo:b", "echo:c", "echo:d"])
    }))

  it.effect("serving a destination again after an earlier responder's scope closed answers requests", () =>
    Effect.gen(function*() {
      const rpc = yield* AmqpRpc.AmqpRpc
      const destination = unique("rpc-again")
      const decode = (payload: Uint8Array) => new TextDecoder().decode(payload)
      const first = yield* Scope.make()
      yield* rpc.serve(destination, (req) => Effect.succeed(encoder.encode(`first:${decode(req.payload)}`))).pipe(
        Scope.provide(first)
      )
      const one = yield* rpc.request(destination, { payload: encoder.encode("a"), timeout: "5 seconds" })
      assert.strictEqual(decode(one.payload), "first:a")
      // the auto-delete `<destination>.rpc` queue goes away with its last consumer
      yield* Scope.close(first, Exit.void)
      yield* rpc.serve(destination, (req) => Effect.succeed(encoder.encode(`second:${decode(req.payload)}`)))
      const two = yield* rpc.request(destination, { payload: encoder.encode("b"), timeout: "5 seconds" })
      assert.strictEqual(decode(two.payload), "second:b")
    }))

  it.effect("a request with no answer in time is a RequestTimeoutError", () =>
    Effect.gen(function*() {
      const rpc = yield* AmqpRpc.AmqpRpc
      const destination = unique("rpc-slow")
      yield* rpc.serve(destination, () => Effect.never)
      const error = yield* Effect.flip(rpc.request(destination, { payload: encoder.encode("x"), timeout: "300 millis" }))
      assert.strictEqual(error._tag, "RequestTimeoutError")
    }))

  it.effect("a responder whose handler fails or dies answers at once with a RemoteError carrying the reason", () =>
    Effect.gen(function*() {
      const rpc = yield* AmqpRpc.AmqpRpc
      const destination = unique("rpc-fail")
      yield* rpc.serve(destination, (req) =>
        new TextDecoder().decode(req.payload) === "die"
          ? Effect.die(new Error("responder defect"))
          : Effect.fail(new Error("no price for sku-1")))
      // a 20 s request timeout: only an answer from the responder ends these requests within the test's 10 s
      const failed = yield* Effect.flip(rpc.request(destination, { payload: encoder.encode("sku-1"), timeout: "20 seconds" }))
      assert.strictEqual(failed._tag, "RemoteError")
      assert.include(failed.message, "no price for sku-1")
      const died = yield* Effect.flip(rpc.request(destination, { payload: encoder.encode("die"), timeout: "20 seconds" }))
      assert.strictEqual(died._tag, "RemoteError")
      assert.include(died.message, "responder defect")
    }), 10_000)

  it.effect("a responder that cannot decode the request answers at once with a RemoteError naming the decode failure", () =>
    Effect.gen(function*() {
      const rpc = yield* AmqpRpc.AmqpRpc
      const destination = unique("rpc-decode")
      const Quote = Schema.fromJsonString(Schema.Struct({ sku: Schema.String }))
      yield* rpc.serve(destination, (req) =>
        Schema.decodeUnknownEffect(Quote)(new TextDecoder().decode(req.payload)).pipe(
          Effect.map((quote) => encoder.encode(`price of ${quote.sku}`))
        ))
      const ok = yield* rpc.request(destination, { payload: encoder.encode(JSON.stringify({ sku: "a" })), timeout: "20 seconds" })
      assert.strictEqual(new TextDecoder().decode(ok.payload), "price of a")
      // a 20 s request timeout: only the responder's answer ends this request within the test's 10 s
      const start = Date.now()
      const failed = yield* Effect.flip(rpc.request(destination, { payload: encoder.encode("{not json"), timeout: "20 seconds" }))
      assert.strictEqual(failed._tag, "RemoteError")
      assert.include(failed.message, "SchemaError")
      assert.isBelow(Date.now() - start, 5000)
    }), 10_000)

  it.effect("a request to a destination nobody serves is a NoRespondersError", () =>
    Effect.gen(function*() {
      const rpc = yield* AmqpRpc.AmqpRpc
      const error = yield* Effect.flip(rpc.request(unique("rpc-none"), { payload: encoder.encode("x"), timeout: "3 seconds" }))
      assert.strictEqual(error._tag, "NoRespondersError")
    }))
})
