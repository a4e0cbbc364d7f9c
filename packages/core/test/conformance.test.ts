import { MemoryBroker } from "@switchyard/core"
import { Conformance } from "@switchyard/core/testing"
import * as ClassDeliveries from "./helpers/classDeliveries.ts"

Conformance.suite({
  name: "memory",
  layer: MemoryBroker.layer({ partitions: 4 }),
  capabilities: MemoryBroker.capabilities,
  timeScale: 0.3
})

// Deliveries as class instances with prototype methods, as the RabbitMQ and Kafka adapters build them: the
// typed paths (`Subscriber`, `Consumer.run`) must settle them too.
Conformance.suite({
  name: "memory, class-based deliveries",
  layer: ClassDeliveries.layer({ partitions: 4 }),
  capabilities: MemoryBroker.capabilities,
  timeScale: 0.3
})
