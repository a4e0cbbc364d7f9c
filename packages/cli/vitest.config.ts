import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "cli",
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // every file spawns CLI processes against the shared brokers: one file at a time
    fileParallelism: false
  }
})
