/**
 * Runs the order-pipeline demo in a child process (as a user would with `./switchyard demo`), for the
 * tests that prove it works on each broker.
 */
import { spawn } from "node:child_process"
import { expect } from "vitest"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../..", import.meta.url))

export interface DemoRun {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly output: string
}

export const runDemo = (
  args: ReadonlyArray<string>,
  options: {
    readonly env?: Readonly<Record<string, string>>
    readonly onOutput?: (output: string, kill: (signal: NodeJS.Signals) => void) => void
  } = {}
): Promise<DemoRun> =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", "examples/src/order-pipeline.ts", ...args], {
      cwd: root,
      env: { ...process.env, ...options.env }
    })
    let output = ""
    const collect = (chunk: Buffer) => {
      output += chunk.toString()
      options.onOutput?.(output, (signal) => child.kill(signal))
    }
    child.stdout.on("data", collect)
    child.stderr.on("data", collect)
    child.on("exit", (code, signal) => resolve({ code, signal, output }))
  })

/** The summary lines every successful run prints, for `orders` orders. */
export const expectedSummary = (orders: number) => {
  const discontinued = Array.from({ length: orders }, (_, i) => i).filter((i) => i % 97 === 13).length
  return {
    emailed: new RegExp(`email\\s+${orders} sent, \\d+ retries, \\d+ duplicates skipped by idempotency`),
    /** In-memory and RabbitMQ deliver the duplicates, which the email consumer's idempotency skips. */
    duplicatesSkipped: new RegExp(`${Math.ceil(orders / 50)} duplicates skipped by idempotency`),
    deadLettered: new RegExp(`dead-lettered\\s+${6 + discontinued}\\n`),
    noViolations: "per-order order violations: 0"
  }
}

/**
 * The proof that the demo runs on a broker through the switch: a vitest case that runs it for 300 orders
 * and checks the summary. `extra` adds broker-specific expectations.
 */
export const demoRunsOn = (
  broker: string,
  summaryName: string,
  options: {
    readonly env?: () => Readonly<Record<string, string>>
    readonly extra?: (output: string) => void
  } = {}
) =>
  async () => {
    const { code, output } = await runDemo(["--broker", broker, "--orders", "300"], { env: options.env?.() ?? {} })
    const expected = expectedSummary(300)
    expect(output).toContain(`Order pipeline summary (${summaryName})`)
    expect(output).toMatch(expected.emailed)
    expect(output).toContain(expected.noViolations)
    expect(output).toMatch(expected.deadLettered)
    options.extra?.(output)
    expect(code).toBe(0)
  }
