/**
 * `switchyard tail <topic>`: prints what arrives on a topic, decoded as JSON (pretty) or raw, until Ctrl-C.
 *
 * @since 0.1.0
 */
import { Broker, Envelope, Subscriber } from "@switchyard/core"
import { Console, Effect, Result, Stream } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as BrokerSelection from "../BrokerSelection.ts"
import * as Output from "../Output.ts"
import * as Topics from "../Topics.ts"

/** What `--json` prints per message (one line each). */
const jsonLine = (envelope: Envelope.Envelope, value: Record<string, unknown>) => ({
  id: envelope.id,
  key: envelope.key ?? null,
  timestamp: envelope.timestamp,
  headers: envelope.headers,
  coordinates: envelope.coordinates,
  ...value
})

const header = (envelope: Envelope.Envelope) =>
  `── ${Envelope.describe(envelope)}  key=${envelope.key ?? "-"}  ${Output.iso(envelope.timestamp)}`

const printDelivery = (envelope: Envelope.Envelope, options: { readonly raw: boolean; readonly json: boolean }) => {
  const text = Topics.text(envelope.payload)
  if (options.raw) {
    return options.json ? Output.printJson(jsonLine(envelope, { payload: text })) : Console.log(text)
  }
  const parsed = Topics.parseLine(text)
  if (options.json) {
    return Output.printJson(jsonLine(
      envelope,
      Result.isSuccess(parsed) ? { value: parsed.success } : { undecodable: parsed.failure, payload: text }
    ))
  }
  return Console.log(
    `${header(envelope)}\n${
      Result.isSuccess(parsed) ? JSON.stringify(parsed.success, null, 2) : `(not JSON: ${parsed.failure})\n${text}`
    }`
  )
}

/**
 * The `tail` command.
 *
 * @since 0.1.0
 */
export const command = Command.make("tail", {
  topic: Argument.String("topic").pipe(Argument.withDescription("The topic (destination) to read")),
  group: Flag.String("group").pipe(
    Flag.withDescription("Consumer group to read as (its members share the messages)"),
    Flag.withDefault("switchyard-tail")
  ),
  from: Flag.Literals("from", ["earliest", "latest"]).pipe(
    Flag.withDescription("Where a new group starts: earliest (what the broker retains) or latest"),
    Flag.withDefault("latest")
  ),
  raw: Flag.Boolean("raw").pipe(Flag.withDescription("Print payloads as they are (UTF-8 text), not decoded as JSON"), Flag.withDefault(false)),
  json: Flag.Boolean("json").pipe(Flag.withDescription("One JSON object per message on stdout (id, key, headers, value)"), Flag.withDefault(false))
}, (options) =>
  BrokerSelection.withBroker(Effect.scoped(Effect.gen(function*() {
    const broker = yield* Broker.Broker
    const subscriber = yield* Subscriber.Subscriber
    const deliveries = yield* subscriber.open(Topics.raw(options.topic), {
      group: options.group,
      startFrom: options.from
    })
    yield* Console.error(
      `tailing ${options.topic} on ${broker.system} (group ${options.group}, from ${options.from}); Ctrl-C to stop`
    )
    yield* deliveries.pipe(
      Stream.runForEach((delivery) =>
        printDelivery(delivery.envelope, options).pipe(Effect.andThen(delivery.ack))
      )
    )
  })))).pipe(
  Command.withDescription(
    "Print the messages arriving on a topic, decoded as JSON (pretty) or raw, until Ctrl-C (exit code 0)"
  ),
  Command.withExamples([
    { command: "switchyard --broker amqp tail orders", description: "Pretty JSON of every new order" },
    { command: "switchyard tail orders --from earliest --json | jq .value", description: "JSON lines for scripts" }
  ])
)
