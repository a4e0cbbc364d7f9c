import { Conformance } from "@switchyard/core/testing"
import { Effect } from "effect"
import { AmqpBroker } from "../src/index.ts"
import { options, rabbitmqctl } from "./helpers.ts"

Conformance.suite({
  name: "rabbitmq",
  layer: AmqpBroker.layer({ ...options, connectionName: "switchyard-conformance" }),
  capabilities: AmqpBroker.capabilities,
  restart: rabbitmqctl("stop_app").pipe(
    Effect.andThen(Effect.sleep("1 second")),
    Effect.ensuring(rabbitmqctl("start_app").pipe(Effect.andThen(rabbitmqctl("await_startup")), Effect.ignore))
  )
})
