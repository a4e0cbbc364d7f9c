import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "amqp",
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // the conformance suite restarts the shared RabbitMQ node (restart.test.ts has a private one): never run this
    // package's files in parallel
    fileParallelism: false
  }
})
