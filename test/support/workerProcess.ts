/**
 * Consumer processes for the fault tests (SIGKILL of one member of a group): a fixture run under
 * `node --import tsx`, its stdout read line by line, killed with SIGKILL when the test's scope closes.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { type Duration, Effect, Schedule, type Scope } from "effect"

/** Starts `file` with `env` added to this process's; `onLine` gets each line it prints. */
export const spawnWorker = (
  file: string,
  env: Readonly<Record<string, string>>,
  onLine: (line: string) => void
): Effect.Effect<ChildProcess, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, ["--import", "tsx", file], {
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "inherit"]
      })
      let buffer = ""
      child.stdout.on("data", (chunk: Buffer) => {
        buffer += chunk.toString("utf8")
        const lines = buffer.split("\n")
        buffer = lines.pop() ?? ""
        for (const line of lines) onLine(line)
      })
      return child
    }),
    (child) => Effect.sync(() => child.kill("SIGKILL"))
  )

/**
 * A group member printing `ready` once subscribed, `got <id> <attempt>` per delivery and `acked <id>` per ack
 * (the redis and sqs `fixtures/worker.ts`).
 */
export interface Member {
  readonly process: ChildProcess
  readonly ready: () => boolean
  /** Every attempt each id was delivered with, in order. */
  readonly got: ReadonlyMap<string, ReadonlyArray<number>>
  readonly acked: ReadonlySet<string>
}

/** Starts a {@link Member}. */
export const spawnMember = (file: string, env: Readonly<Record<string, string>>): Effect.Effect<Member, never, Scope.Scope> => {
  const got = new Map<string, Array<number>>()
  const acked = new Set<string>()
  const state = { ready: false }
  return Effect.map(
    spawnWorker(file, env, (line) => {
      const [word, id, attempt] = line.split(" ")
      if (word === "ready") state.ready = true
      else if (word === "got" && id !== undefined) got.set(id, [...(got.get(id) ?? []), Number(attempt)])
      else if (word === "acked" && id !== undefined) acked.add(id)
    }),
    (process): Member => ({ process, ready: () => state.ready, got, acked })
  )
}

/** Polls `condition` every 50 ms; dies naming `what` when it does not hold within `timeout`. */
export const waitUntil = (condition: () => boolean, timeout: Duration.Input, what: string): Effect.Effect<void> =>
  Effect.void.pipe(
    Effect.repeat({ schedule: Schedule.spaced("50 millis"), until: condition }),
    Effect.timeoutOrElse({ duration: timeout, orElse: () => Effect.die(new Error(`timed out waiting until ${what}`)) })
  )
