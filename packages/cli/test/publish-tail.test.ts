import { describe, expect, it } from "vitest"
import { json, run, start, tempFile, unique } from "./helpers.ts"

const orders = [
  { orderId: "o-1", total: 42 },
  { orderId: "o-2", total: 7.5, tags: ["a", "b"] },
  { orderId: "o-3", total: 0, note: "ünïcode ✓" }
]
const jsonl = orders.map((o) => JSON.stringify(o)).join("\n") + "\n"

const jsonLines = (stdout: string) => stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))

for (const broker of ["amqp", "jetstream"] as const) {
  describe(`publish, tail and lag on ${broker}`, () => {
    it("publish < file.jsonl is confirmed; tail --json reads the values; SIGINT exits 0; lag counts what the group has not read", async () => {
      const topic = unique("orders")
      const group = unique("tail")
      const tail = start(["--broker", broker, "tail", topic, "--group", group, "--from", "earliest", "--json"])
      await tail.waitFor((_, stderr) => stderr.includes(`tailing ${topic}`))

      const file = tempFile("orders.jsonl", jsonl)
      const published = await run(
        ["--broker", broker, "publish", topic, "--key", "k-1", "--header", "source=cli-test", "--header", "run=1", "--json"],
        { stdinFile: file }
      )
      expect(published.code, published.stderr).toBe(0)
      expect(json(published)).toMatchObject({ topic, published: 3 })

      await tail.waitFor((stdout) => jsonLines(stdout).length >= 3)
      tail.child.kill("SIGINT")
      const ended = await tail.exited
      expect(ended.code, ended.stderr).toBe(0)
      expect(ended.signal).toBeNull()
      expect(ended.stderr).not.toMatch(/error|at .*\.ts/i)
      const lines = jsonLines(ended.stdout)
      expect(lines.map((l) => l.value)).toEqual(orders)
      expect(lines.map((l) => l.key)).toEqual(["k-1", "k-1", "k-1"])
      for (const line of lines) expect(line.headers).toMatchObject({ source: "cli-test", run: "1" })

      // the tail's group stays at the broker: two more messages are its lag
      const more = await run(["--broker", broker, "publish", topic], { input: '{"orderId":"o-4"}\n{"orderId":"o-5"}\n' })
      expect(more.code, more.stderr).toBe(0)
      expect(more.stdout).toMatch(/^published 2 messages to .* all confirmed/m)
      const lag = await run(["--broker", broker, "lag", topic, "--group", group, "--json"])
      expect(lag.code, lag.stderr).toBe(0)
      expect(json(lag)).toMatchObject({ topic, group, lag: 2 })
      const text = await run(["--broker", broker, "lag", topic, "--group", group])
      expect(text.stdout.trim()).toBe(`${topic}  group ${group}  lag 2`)
    })

    it("tail without --json prints pretty JSON under a header line; --raw prints payloads as they are", async () => {
      const topic = unique("raw")
      const pretty = start(["--broker", broker, "tail", topic, "--group", unique("g")])
      const raw = start(["--broker", broker, "tail", topic, "--group", unique("g"), "--raw"])
      await pretty.waitFor((_, stderr) => stderr.includes("tailing"))
      await raw.waitFor((_, stderr) => stderr.includes("tailing"))
      const published = await run(["--broker", broker, "publish", topic], { input: '{"a":1,"b":[true,null]}\n' })
      expect(published.code, published.stderr).toBe(0)
      await pretty.waitFor((stdout) => stdout.includes("}\n"))
      await raw.waitFor((stdout) => stdout.includes("}\n"))
      pretty.child.kill("SIGINT")
      raw.child.kill("SIGINT")
      const [p, r] = await Promise.all([pretty.exited, raw.exited])
      expect([p.code, r.code]).toEqual([0, 0])
      expect(p.stdout).toMatch(new RegExp(`^── ${topic.replace(/\./g, "\\.")}#\\S+`, "m"))
      expect(p.stdout).toContain('{\n  "a": 1,\n  "b": [\n    true,\n    null\n  ]\n}')
      expect(r.stdout).toBe('{"a":1,"b":[true,null]}\n')
    })

    it("publish of an invalid line exits 2 naming the line, and publishes nothing", async () => {
      const topic = unique("bad")
      const group = unique("g")
      const tail = start(["--broker", broker, "tail", topic, "--group", group])
      await tail.waitFor((_, stderr) => stderr.includes("tailing"))
      tail.child.kill("SIGINT")
      expect((await tail.exited).code).toBe(0)
      const result = await run(["--broker", broker, "publish", topic], { input: '{"ok":1}\n{not json\n' })
      expect(result.code).toBe(2)
      expect(result.stderr).toMatch(/^switchyard: line 2 is not valid JSON/)
      const lag = await run(["--broker", broker, "lag", topic, "--group", group, "--json"])
      expect(json(lag).lag).toBe(0)
    })
  })
}

describe("lag where the broker cannot tell", () => {
  it("core NATS: exit code 3 and a clear message", async () => {
    const result = await run(["--broker", "nats", "lag", "orders", "--group", "billing"])
    expect(result.code).toBe(3)
    expect(result.stderr).toBe("switchyard: the nats broker cannot tell a group's lag (it keeps no consumer positions)\n")
  })
})
