import { Conformance } from "@switchyard/core/testing"
import { NatsBroker } from "../src/index.ts"
import { servers } from "./helpers.ts"
import { PrivateNatsServer } from "../src/testing/index.ts"

// JetStream on a private nats-server (so the broker-restart case can restart it without disturbing the
// shared server on 4222); the server is killed in the layer's finalizer.
const server = PrivateNatsServer.handle()

Conformance.suite({
  name: "nats-jetstream",
  layer: server.brokerLayer({ consumer: { ackWait: "5 seconds" } }),
  capabilities: NatsBroker.capabilities,
  restart: server.restart
})

Conformance.suite({
  name: "nats-core",
  layer: NatsBroker.layerCore({ connection: { servers } }),
  capabilities: NatsBroker.capabilitiesCore
})
