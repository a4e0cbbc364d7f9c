import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "amqp",
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // the broker-restart test stops and starts the shared RabbitMQ node: never run this package's files in parallel
    fileParallelism: false
  }
})
