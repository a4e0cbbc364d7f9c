import { MemoryBroker } from "@switchyard/core"
import { Conformance } from "@switchyard/core/testing"

Conformance.suite({
  name: "memory",
  layer: MemoryBroker.layer({ partitions: 4 }),
  capabilities: MemoryBroker.capabilities,
  timeScale: 0.3
})
