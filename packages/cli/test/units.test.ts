import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Option } from "effect"
import { Cli, Failure, Filters, Output, ProgressBar, Publish } from "../src/index.ts"

describe("ProgressBar.render", () => {
  it("fills the bar in proportion and shows count, percent, rate and ETA", () => {
    const line = ProgressBar.render({ label: "redrive", done: 250, total: 1000, elapsedMillis: 1000 }, 120)
    expect(line).toBe(`redrive [${"█".repeat(10)}${"░".repeat(30)}] 250/1000  25%  250 msg/s  ETA 3s`)
  })

  it("fits the line in narrow terminals (the bar shrinks to 10)", () => {
    const line = ProgressBar.render({ label: "redrive", done: 5, total: 10, elapsedMillis: 2000, note: "redriven 5" }, 40)
    expect(line).toBe(`redrive [${"█".repeat(5)}${"░".repeat(5)}] 5/10  50%  2.5 msg/s  ETA 2s  redriven 5`)
  })

  it("is full and at ETA 0 when done, unknown ETA before any progress", () => {
    expect(ProgressBar.render({ label: "p", done: 3, total: 3, elapsedMillis: 10 }, 60)).toContain("] 3/3 100%")
    expect(ProgressBar.render({ label: "p", done: 3, total: 3, elapsedMillis: 10 }, 60)).toContain("ETA 0ms")
    expect(ProgressBar.render({ label: "p", done: 0, total: 3, elapsedMillis: 0 }, 60)).toContain("ETA ?")
    expect(ProgressBar.render({ label: "p", done: 0, total: 0, elapsedMillis: 0 }, 60)).toContain("0/0 100%")
  })

  it("rate, ETA and durations", () => {
    expect(ProgressBar.rate({ label: "", done: 500, total: 1000, elapsedMillis: 2000 })).toBe(250)
    expect(ProgressBar.etaMillis({ label: "", done: 500, total: 1000, elapsedMillis: 2000 })).toBe(2000)
    expect(ProgressBar.formatDuration(850)).toBe("850ms")
    expect(ProgressBar.formatDuration(12_400)).toBe("12s")
    expect(ProgressBar.formatDuration(185_000)).toBe("3m05s")
    expect(ProgressBar.formatDuration(3_720_000)).toBe("1h02m")
    expect(ProgressBar.plainLine({ label: "purge", done: 10, total: 10, elapsedMillis: 500 })).toBe(
      "purge: 10/10 100%  20.0 msg/s  ETA 0ms"
    )
  })
})

describe("pure helpers", () => {
  it("Output.table aligns columns", () => {
    expect(Output.table(["reason", "count"], [["boom", "2"], ["bad json", "1"]])).toBe(
      "reason    count\n--------  -----\nboom      2\nbad json  1"
    )
  })

  it("Filters.parseTime reads ages and dates", () => {
    expect(Filters.parseTime("2h", 10_000_000)).toEqual(Option.some(10_000_000 - 7_200_000))
    expect(Filters.parseTime("90s", 100_000)).toEqual(Option.some(10_000))
    expect(Filters.parseTime("1970-01-01T00:00:01Z", 0)).toEqual(Option.some(1000))
    expect(Filters.parseTime("yesterday-ish", 0)).toEqual(Option.none())
  })

  it("Filters.countRows: most frequent first", () => {
    expect(Filters.countRows({ boom: 1, "bad json": 3, a: 1 })).toEqual([["bad json", "3"], ["a", "1"], ["boom", "1"]])
  })

  it("Cli.commandOf finds the command past the global flag", () => {
    expect(Cli.commandOf(["--broker", "amqp", "tail", "orders"])).toBe("tail")
    expect(Cli.commandOf(["--broker=amqp", "dlq", "list", "tail"])).toBe("dlq")
    expect(Cli.commandOf(["publish", "tail"])).toBe("publish")
    expect(Cli.commandOf([])).toBeUndefined()
  })

  it("Failure.fromError: Switchyard errors exit 1 with their message on one line", () => {
    const failure = Failure.fromError({ _tag: "ConnectionError", message: "connection to rabbitmq failed:\n ECONNREFUSED" })
    expect(failure.exitCode).toBe(1)
    expect(failure.message).toBe("connection to rabbitmq failed: ECONNREFUSED")
    expect(Failure.fromError(Failure.unsupported("no")).exitCode).toBe(3)
  })

  it.effect("Publish.parseLines skips blank lines and names the first bad one", () =>
    Effect.gen(function*() {
      expect(yield* Publish.parseLines('{"n":1}\n\n  [2, "x"]\n"s"\n')).toEqual([{ n: 1 }, [2, "x"], "s"])
      const bad = yield* Effect.exit(Publish.parseLines('{"n":1}\n{oops\n'))
      expect(Exit.isFailure(bad)).toBe(true)
      const error = yield* Effect.flip(Publish.parseLines('{"n":1}\n{oops\n'))
      expect(error.exitCode).toBe(2)
      expect(error.message).toMatch(/^line 2 is not valid JSON/)
    }))
})
