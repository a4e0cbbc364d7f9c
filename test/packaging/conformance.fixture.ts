// Copied as conformance.test.ts and run by the packaging test inside the fresh project with vitest from the registry: the conformance suite
// from the packed `@switchyard/core/testing`, against the packed in-memory broker.
import { MemoryBroker } from "@switchyard/core"
import { Conformance } from "@switchyard/core/testing"

Conformance.suite({
  name: "memory (packed)",
  layer: MemoryBroker.layer({ partitions: 4 }),
  capabilities: MemoryBroker.capabilities,
  timeScale: 0.3
})
