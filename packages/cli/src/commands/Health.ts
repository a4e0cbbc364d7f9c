/**
 * `switchyard health`: connects, prints what the broker says about itself and its capabilities.
 *
 * @since 0.1.0
 */
import { Broker, type Capabilities } from "@switchyard/core"
import { Console, Effect } from "effect"
import { Command, Flag } from "effect/cli"
import * as BrokerSelection from "../BrokerSelection.ts"
import * as Output from "../Output.ts"

/**
 * The lines `health` prints (pure).
 *
 * @example
 * ```ts
 * import { Capabilities } from "@switchyard/core"
 * import { Health } from "@switchyard/cli"
 * const text = Health.report("memory", { product: "memory", version: "0.1.0", details: {} }, Capabilities.none)
 * ```
 * @since 0.1.0
 */
export const report = (system: string, info: Broker.ServerInfo, capabilities: Capabilities.Capabilities): string =>
  [
    `ok: connected to ${system}`,
    `product    ${info.product}`,
    `version    ${info.version}`,
    ...Object.entries(info.details).map(([name, value]) => `${name.padEnd(10)} ${value}`),
    `capabilities ${
      Object.entries(capabilities).map(([name, on]) => `${name}${on ? "" : " (no)"}`).join(", ")
    }`
  ].join("\n")

/**
 * The `health` command.
 *
 * @since 0.1.0
 */
export const command = Command.make("health", {
  json: Flag.Boolean("json").pipe(Flag.withDescription("Print { broker, product, version, details, capabilities } as JSON"), Flag.withDefault(false))
}, (options) =>
  BrokerSelection.withBroker(Effect.gen(function*() {
    const broker = yield* Broker.Broker
    const info: Broker.ServerInfo = broker.serverInfo === undefined
      ? { product: broker.system, version: "unknown", details: {} }
      : yield* broker.serverInfo
    yield* options.json
      ? Output.printJson({ broker: broker.system, ...info, capabilities: broker.capabilities })
      : Console.log(report(broker.system, info, broker.capabilities))
  }))).pipe(
  Command.withDescription(
    "Connect to the broker and print its product, version and capabilities; exit code 1 (with the reason) when it cannot connect"
  ),
  Command.withExamples([{ command: "AMQP_URL=amqp://guest:guest@rabbit:5672 switchyard --broker amqp health", description: "Check RabbitMQ" }])
)
