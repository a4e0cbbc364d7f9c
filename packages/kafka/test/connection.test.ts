/**
 * The connection options without a broker: the common vocabulary (connectTimeout, tls, username/password)
 * mapped to kafkajs, and the environment variables (the common `KAFKA_TLS` / `KAFKA_USERNAME` /
 * `KAFKA_PASSWORD` / `KAFKA_CONNECT_TIMEOUT` and today's `KAFKA_SSL` / `KAFKA_SASL_*`).
 */
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Redacted } from "effect"
import { KafkaConnection } from "../src/index.ts"

describe("kafka connection options", () => {
  it("maps tls, SASL and connectTimeout to kafkajs", () => {
    const config = KafkaConnection.kafkaConfig(KafkaConnection.resolve({
      brokers: ["b:9092"],
      tls: { ca: "CA", rejectUnauthorized: false },
      username: "svc",
      password: Redacted.make("s3cret"),
      saslMechanism: "scram-sha-256",
      connectTimeout: "2 seconds"
    }))
    assert.deepStrictEqual(config.ssl, { ca: "CA", rejectUnauthorized: false })
    assert.deepStrictEqual(config.sasl, { mechanism: "scram-sha-256", username: "svc", password: "s3cret" })
    assert.strictEqual(config.connectionTimeout, 2000)
    const plain = KafkaConnection.kafkaConfig(KafkaConnection.resolve({ brokers: ["b:9092"], username: "u" }))
    assert.deepStrictEqual(plain.sasl, { mechanism: "plain", username: "u", password: "" })
    assert.strictEqual(plain.ssl, undefined)
    assert.strictEqual(plain.connectionTimeout, 10_000, "the kit's default")
    assert.strictEqual(KafkaConnection.kafkaConfig(KafkaConnection.resolve({ brokers: ["b"], tls: true })).ssl, true)
  })

  it.effect("reads the common variables, and today's names where the common ones are not set", () =>
    Effect.gen(function*() {
      const common = yield* KafkaConnection.config().parse(ConfigProvider.fromEnvRecord({
        KAFKA_BROKERS: "a:1,b:2",
        KAFKA_TLS: "true",
        KAFKA_USERNAME: "alice",
        KAFKA_PASSWORD: "pw",
        KAFKA_CONNECT_TIMEOUT: "3 seconds",
        KAFKA_SSL: "false",
        KAFKA_SASL_USERNAME: "bob"
      }))
      assert.deepStrictEqual(common.brokers, ["a:1", "b:2"])
      assert.strictEqual(common.tls, true, "KAFKA_TLS wins over KAFKA_SSL")
      assert.strictEqual(common.username, "alice")
      assert.strictEqual(Redacted.value(common.password!), "pw")
      assert.strictEqual(KafkaConnection.kafkaConfig(KafkaConnection.resolve(common)).connectionTimeout, 3000)
      const legacy = yield* KafkaConnection.config("SVC").parse(ConfigProvider.fromEnvRecord({
        SVC_BROKERS: "c:3",
        SVC_SSL: "true",
        SVC_SASL_USERNAME: "carol",
        SVC_SASL_PASSWORD: "pw2",
        SVC_SASL_MECHANISM: "scram-sha-512"
      }))
      assert.strictEqual(legacy.tls, true)
      assert.strictEqual(legacy.username, "carol")
      assert.strictEqual(Redacted.value(legacy.password!), "pw2")
      assert.strictEqual(legacy.saslMechanism, "scram-sha-512")
      assert.notInclude(JSON.stringify(legacy), "pw2")
    }))

  it.effect("bad configuration fails the layer with ConnectionError reason Invalid", () =>
    Effect.gen(function*() {
      const error = yield* Effect.scoped(Layer.build(KafkaConnection.layerConfig(KafkaConnection.config()))).pipe(
        Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord({ KAFKA_BROKERS: "a:1", KAFKA_TLS: "maybe" }))),
        Effect.flip
      )
      assert.strictEqual(error._tag, "ConnectionError")
      assert.strictEqual(error.kind, "Invalid")
      assert.isFalse(error.isRetryable)
      const none = yield* Effect.scoped(Layer.build(KafkaConnection.layer({ brokers: [] }))).pipe(Effect.flip)
      assert.strictEqual(none.kind, "Invalid")
    }))
})
