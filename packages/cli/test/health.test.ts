import { describe, expect, it } from "vitest"
import { json, run } from "./helpers.ts"

describe("health", () => {
  it("RabbitMQ: connects, prints the product and version, exit 0", async () => {
    const result = await run(["--broker", "amqp", "health"])
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toContain("ok: connected to rabbitmq")
    expect(result.stdout).toMatch(/^version +\S+/m)
    expect(result.stdout).toMatch(/^capabilities .*consumerGroups/m)
    const report = json(await run(["health", "--broker", "amqp", "--json"]))
    expect(report.broker).toBe("rabbitmq")
    expect(report.capabilities.persistent).toBe(true)
    expect(typeof report.version).toBe("string")
  })

  it("JetStream: nats-server, its version and JetStream on, exit 0", async () => {
    const result = await run(["health"], { env: { SWITCHYARD_BROKER: "jetstream" } })
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toContain("ok: connected to nats-jetstream")
    expect(result.stdout).toMatch(/^product +nats-server$/m)
    expect(result.stdout).toMatch(/^version +\d+\.\d+\.\d+/m)
    const report = json(await run(["health", "--json"], { env: { SWITCHYARD_BROKER: "jetstream" } }))
    expect(report.product).toBe("nats-server")
    expect(report.version).toMatch(/^\d+\.\d+\.\d+/)
    expect(report.details.jetstream).toBe("true")
  })

  it("core NATS: at most once", async () => {
    const report = json(await run(["--broker", "nats", "health", "--json"]))
    expect(report.broker).toBe("nats")
    expect(report.capabilities.atMostOnce).toBe(true)
  })

  it("RabbitMQ on a wrong port: exit 1 and the reason on one line of stderr", async () => {
    const result = await run(["--broker", "amqp", "health"], { env: { AMQP_PORT: "5999" } })
    expect(result.code).toBe(1)
    expect(result.stdout).toBe("")
    expect(result.stderr.trim().split("\n")).toHaveLength(1)
    expect(result.stderr).toMatch(/^switchyard: connection to .*5999.* failed: .*ECONNREFUSED/)
  })

  it("JetStream on a wrong port: exit 1 and the reason", async () => {
    const result = await run(["--broker", "jetstream", "health"], { env: { NATS_SERVERS: "nats://127.0.0.1:4999" } })
    expect(result.code).toBe(1)
    expect(result.stderr.trim().split("\n")).toHaveLength(1)
    expect(result.stderr).toMatch(/^switchyard: connection to .*4999.* failed: .*refused/)
  })

  it("Kafka without KAFKA_BROKERS: exit 1, the configuration problem named", async () => {
    const result = await run(["--broker", "kafka", "health"], { env: { KAFKA_BROKERS: "" } })
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/^switchyard: connection to kafka failed: invalid configuration/)
  })
})
