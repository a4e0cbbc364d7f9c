/**
 * `switchyard lag <topic> --group <g>`: how many messages a group has not consumed yet.
 *
 * @since 0.1.0
 */
import { Broker } from "@switchyard/core"
import { Console, Effect } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import * as BrokerSelection from "../BrokerSelection.ts"
import * as Failure from "../Failure.ts"
import * as Output from "../Output.ts"

/**
 * The `lag` command.
 *
 * @since 0.1.0
 */
export const command = Command.make("lag", {
  topic: Argument.String("topic").pipe(Argument.withDescription("The topic (destination)")),
  group: Flag.String("group").pipe(Flag.withDescription("The consumer group")),
  json: Flag.Boolean("json").pipe(Flag.withDescription("Print { topic, group, broker, lag } as JSON"), Flag.withDefault(false))
}, (options) =>
  BrokerSelection.withBroker(Effect.gen(function*() {
    const broker = yield* Broker.Broker
    if (broker.lag === undefined) {
      return yield* Failure.unsupported(
        `the ${broker.system} broker cannot tell a group's lag (it keeps no consumer positions)`
      )
    }
    const lag = yield* broker.lag(options.topic, options.group)
    yield* options.json
      ? Output.printJson({ topic: options.topic, group: options.group, broker: broker.system, lag })
      : Console.log(`${options.topic}  group ${options.group}  lag ${lag}`)
  }))).pipe(
  Command.withDescription(
    "How many messages of a topic a group has not consumed yet (Kafka: offsets; JetStream: pending + unacked; RabbitMQ: the group queue's depth); exit code 3 where the broker cannot tell"
  ),
  Command.withExamples([{ command: "switchyard --broker kafka lag orders --group billing", description: "The billing group's lag" }])
)
