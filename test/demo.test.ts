import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

const root = fileURLToPath(new URL("..", import.meta.url))

const runDemo = (args: ReadonlyArray<string>, onOutput?: (text: string, kill: (signal: NodeJS.Signals) => void) => void) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", "examples/src/order-pipeline.ts", ...args], {
      cwd: root,
      env: { ...process.env, SWITCHYARD_BROKER: "memory" }
    })
    let output = ""
    const collect = (chunk: Buffer) => {
      output += chunk.toString()
      onOutput?.(output, (signal) => child.kill(signal))
    }
    child.stdout.on("data", collect)
    child.stderr.on("data", collect)
    child.on("exit", (code, signal) => resolve({ code, signal, output }))
  })

describe("demo pipeline (in-memory broker)", () => {
  it("runs to completion, prints the summary, dead-letters the bad messages and exits 0", async () => {
    const { code, output } = await runDemo(["--orders", "200"])
    expect(output).toContain("Order pipeline summary (memory)")
    expect(output).toMatch(/email\s+200 sent \(idempotent: 4 duplicates skipped\)/)
    expect(output).toContain("per-order order violations: 0")
    expect(output).toMatch(/dead-lettered\s+8\n/)
    expect(output).toMatch(/2 × inventory: OutOfStock/)
    expect(output).toMatch(/2 × email: DecodeError/)
    expect(output).toMatch(/1 × inventory: UnknownEventType/)
    expect(code).toBe(0)
  }, 120_000)

  it("drains in-flight messages on SIGTERM and exits", async () => {
    let sent = false
    const { code, output } = await runDemo(["--orders", "200000"], (text, kill) => {
      if (!sent && text.includes("order pipeline on memory")) {
        sent = true
        setTimeout(() => kill("SIGTERM"), 1500)
      }
    })
    expect(sent).toBe(true)
    expect(output).toContain('consumer "email"')
    expect(output).toContain("draining in-flight messages")
    expect(output).not.toContain("Order pipeline summary")
    expect(code).toBe(130)
  }, 120_000)
})
