/**
 * The plumbing shared by the adapters' test servers (embedded Kafka, ElasticMQ, private redis-server,
 * RabbitMQ and nats-server): a free port, a scoped temporary directory, a command run to completion, a Maven
 * classpath resolved once into a cache dir, a server spawned with a bounded tail of its output, readiness
 * raced against an early exit, and a stop that escalates from SIGTERM to SIGKILL. Node only.
 *
 * Every failure is a {@link ServerProcessError}; each server maps it to its own public error.
 *
 * @since 0.1.0
 */
import { type ChildProcess, type ChildProcessByStdio, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import type { Readable } from "node:stream"
import { Duration, Effect, Result, Schedule, Schema, type Scope } from "effect"

/**
 * Finding a port, running a command, resolving jars, spawning or probing a server failed.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ServerProcess } from "@switchyard/core/testing"
 * class MyServerError extends Error {}
 * const port = ServerProcess.freePort.pipe(
 *   Effect.mapError((e) => new MyServerError(e.reason, { cause: e.cause }))
 * )
 * ```
 * @since 0.1.0
 */
export class ServerProcessError extends Schema.TaggedError<ServerProcessError>()("ServerProcessError", {
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return this.cause instanceof Error ? `${this.reason}: ${this.cause.message}` : this.reason
  }
}

const fail = (reason: string, cause?: unknown) =>
  new ServerProcessError(cause === undefined ? { reason } : { reason, cause })

/**
 * A free TCP port on 127.0.0.1 (bind to port 0, read it, close).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ServerProcess } from "@switchyard/core/testing"
 * const ports = Effect.all([ServerProcess.freePort, ServerProcess.freePort])
 * ```
 * @since 0.1.0
 */
export const freePort: Effect.Effect<number, ServerProcessError> = Effect.callback((resume) => {
  const server = Net.createServer()
  server.once("error", (e) => resume(Effect.fail(fail("cannot find a free port", e))))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(port > 0 ? Effect.succeed(port) : Effect.fail(fail("no port"))))
  })
})

/**
 * A fresh directory under the OS temp dir (`<tmp>/<prefix>XXXXXX`), removed with everything in it when the
 * scope closes. Acquire it before the server, so that the server's finalizer runs first.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ServerProcess } from "@switchyard/core/testing"
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const work = yield* ServerProcess.tempDir("switchyard-example-")
 *   yield* Effect.log(work)
 * }))
 * ```
 * @since 0.1.0
 */
export const tempDir = (prefix: string): Effect.Effect<string, ServerProcessError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.try({
      try: () => Fs.mkdtempSync(Path.join(Os.tmpdir(), prefix)),
      catch: (e) => fail("cannot create a temp dir", e)
    }),
    (path) => Effect.sync(() => Fs.rmSync(path, { recursive: true, force: true }))
  )

/**
 * Runs a command to completion and gives its output (stdout and stderr as they came); fails with the tail of
 * that output when it exits non-zero. Interrupting it kills the command.
 *
 * @example
 * ```ts
 * import { ServerProcess } from "@switchyard/core/testing"
 * const version = ServerProcess.runToCompletion("java", ["-version"], "/tmp")
 * ```
 * @since 0.1.0
 */
export const runToCompletion = (
  command: string,
  args: ReadonlyArray<string>,
  cwd: string
): Effect.Effect<string, ServerProcessError> =>
  Effect.callback<string, ServerProcessError>((resume) => {
    const child = spawn(command, args, { cwd, stdio: ["ignore", "pipe", "pipe"] })
    const output: Array<string> = []
    child.stdout.on("data", (d: Buffer) => output.push(d.toString()))
    child.stderr.on("data", (d: Buffer) => output.push(d.toString()))
    child.on("error", (e) => resume(Effect.fail(fail(`cannot run ${command}`, e))))
    child.on("close", (code) =>
      resume(
        code === 0
          ? Effect.succeed(output.join(""))
          : Effect.fail(fail(`${command} ${args.join(" ")} exited with ${code}: ${output.join("").slice(-4000)}`))
      ))
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/**
 * Options of {@link mavenClasspath}.
 *
 * @since 0.1.0
 */
export interface MavenClasspathOptions {
  /** `groupId:artifactId:version` of each dependency (their runtime dependencies come along). */
  readonly coordinates: ReadonlyArray<string>
  /** Where the jars are kept (`<cacheDir>/libs`), with the generated `pom.xml` and the `.complete` marker. */
  readonly cacheDir: string
  /** What is resolved, for the log line (e.g. `"Apache Kafka 4.1.1"`). */
  readonly label: string
  /** The `artifactId` of the generated pom (default `switchyard-test-server`). */
  readonly project?: string | undefined
}

const pom = (project: string, dependencies: ReadonlyArray<readonly [string, string, string]>) => `<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.switchyard</groupId>
  <artifactId>${project}</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
${
  dependencies.map(([group, artifact, version]) =>
    `    <dependency><groupId>${group}</groupId><artifactId>${artifact}</artifactId><version>${version}</version></dependency>`
  ).join("\n")
}
  </dependencies>
</project>
`

const coordinate = (text: string): Effect.Effect<readonly [string, string, string], ServerProcessError> => {
  const [group, artifact, version, ...rest] = text.split(":")
  return group && artifact && version && rest.length === 0
    ? Effect.succeed([group, artifact, version] as const)
    : Effect.fail(fail(`not a groupId:artifactId:version coordinate: ${text}`))
}

/**
 * Resolves Maven artifacts and their runtime dependencies into `<cacheDir>/libs` with
 * `mvn dependency:copy-dependencies`, once: a `.complete` marker written after a successful resolution makes
 * later calls return at once (an interrupted resolution starts over). Gives the classpath (`<cacheDir>/libs/*`).
 * Needs `mvn` on the PATH the first time.
 *
 * @example
 * ```ts
 * import { ServerProcess } from "@switchyard/core/testing"
 * const classpath = ServerProcess.mavenClasspath({
 *   coordinates: ["org.elasticmq:elasticmq-server_2.13:1.7.1"],
 *   cacheDir: "/tmp/elasticmq-1.7.1",
 *   label: "ElasticMQ 1.7.1"
 * })
 * ```
 * @since 0.1.0
 */
export const mavenClasspath = (options: MavenClasspathOptions): Effect.Effect<string, ServerProcessError> =>
  Effect.gen(function*() {
    const dir = options.cacheDir
    const libs = Path.join(dir, "libs")
    const marker = Path.join(dir, ".complete")
    if (!Fs.existsSync(marker)) {
      const dependencies = yield* Effect.forEach(options.coordinates, coordinate)
      yield* Effect.logInfo(`resolving ${options.label} jars from Maven Central into ${libs}`)
      yield* Effect.try({
        try: () => {
          Fs.mkdirSync(dir, { recursive: true })
          Fs.rmSync(libs, { recursive: true, force: true })
          Fs.writeFileSync(Path.join(dir, "pom.xml"), pom(options.project ?? "switchyard-test-server", dependencies))
        },
        catch: (e) => fail("cannot write the cache dir", e)
      })
      yield* runToCompletion(
        "mvn",
        ["-B", "-q", "dependency:copy-dependencies", "-DincludeScope=runtime", `-DoutputDirectory=${libs}`],
        dir
      )
      yield* Effect.try({ try: () => Fs.writeFileSync(marker, "complete\n"), catch: (e) => fail("cannot write the marker", e) })
    }
    return `${libs}${Path.sep}*`
  })

/**
 * A spawned server and the tail of what it printed (for the error when it does not start).
 *
 * @since 0.1.0
 */
export interface Launched {
  /** What the errors call it (e.g. `"broker"`). */
  readonly name: string
  readonly command: string
  readonly process: ChildProcessByStdio<null, Readable, Readable>
  /** The last 20 000 characters of its stdout and stderr, interleaved as they came. */
  readonly tail: { readonly text: string }
  /** The error the spawn reported (`ENOENT`, …), if it did. */
  readonly spawnError: () => Error | undefined
}

/**
 * Options of {@link spawnServer}.
 *
 * @since 0.1.0
 */
export interface SpawnOptions {
  readonly command: string
  readonly args: ReadonlyArray<string>
  readonly cwd?: string | undefined
  /** The environment (default: this process's). */
  readonly env?: NodeJS.ProcessEnv | undefined
  /** What the errors call it (default: the command). */
  readonly name?: string | undefined
  /** Also copy its output to this process's stderr (default: only kept in the tail). */
  readonly verbose?: boolean | undefined
}

const tailLength = 20_000

/**
 * Spawns a server (stdin closed, stdout and stderr piped into a bounded tail). It is not waited for: follow
 * with {@link awaitOutput} or {@link awaitReady}, and {@link stop} it. A command that cannot be spawned
 * (`ENOENT`) shows as a failure of those.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ServerProcess } from "@switchyard/core/testing"
 * const program = Effect.gen(function*() {
 *   const launched = yield* ServerProcess.spawnServer({ command: "nats-server", args: ["-p", "0"] })
 *   yield* ServerProcess.awaitOutput(launched, "Server is ready", "20 seconds")
 *   yield* ServerProcess.stop(launched.process, "10 seconds")
 * })
 * ```
 * @since 0.1.0
 */
export const spawnServer = (options: SpawnOptions): Effect.Effect<Launched, ServerProcessError> =>
  Effect.try({
    try: (): Launched => {
      const proc = spawn(options.command, options.args, {
        cwd: options.cwd,
        env: options.env ?? process.env,
        stdio: ["ignore", "pipe", "pipe"]
      })
      const tail = { text: "" }
      const spawnError: { error: Error | undefined } = { error: undefined }
      // kept from the start: an `error` event without a listener would be thrown
      proc.on("error", (e) => (spawnError.error = e))
      const onData = (d: Buffer) => {
        const text = d.toString()
        if (options.verbose === true) process.stderr.write(text)
        tail.text = (tail.text + text).slice(-tailLength)
      }
      proc.stdout.on("data", onData)
      proc.stderr.on("data", onData)
      return {
        name: options.name ?? options.command,
        command: options.command,
        process: proc,
        tail,
        spawnError: () => spawnError.error
      }
    },
    catch: (e) => fail(`cannot spawn ${options.command}`, e)
  })

const exitError = (launched: Launched, code: number | null, signal: NodeJS.Signals | null) =>
  fail(`${launched.name} exited (code ${code}, signal ${signal}) before it was ready:\n${launched.tail.text.slice(-6000)}`)

/**
 * Fails as soon as the server exits (or turns out not to be spawnable); never succeeds. Race it against a
 * readiness check.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ServerProcess } from "@switchyard/core/testing"
 * const program = Effect.gen(function*() {
 *   const launched = yield* ServerProcess.spawnServer({ command: "redis-server", args: ["--port", "0"] })
 *   yield* Effect.raceFirst(Effect.sleep("1 second"), ServerProcess.exitedBeforeReady(launched))
 * })
 * ```
 * @since 0.1.0
 */
export const exitedBeforeReady = (launched: Launched): Effect.Effect<never, ServerProcessError> =>
  Effect.callback<never, ServerProcessError>((resume) => {
    const proc = launched.process
    const onError = (e: Error) => resume(Effect.fail(fail(`cannot spawn ${launched.command}`, e)))
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => resume(Effect.fail(exitError(launched, code, signal)))
    // it may have failed or exited before this was subscribed
    const early = launched.spawnError()
    if (early !== undefined) return onError(early)
    if (proc.exitCode !== null || proc.signalCode !== null) return onExit(proc.exitCode, proc.signalCode)
    proc.on("error", onError)
    proc.on("exit", onExit)
    return Effect.sync(() => {
      proc.off("error", onError)
      proc.off("exit", onExit)
    })
  })

/**
 * Resolves once the server's output contains `text` (e.g. `"Server is ready"`); fails when it exits first or
 * when `timeout` passes (with the tail of its output).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ServerProcess } from "@switchyard/core/testing"
 * const program = Effect.gen(function*() {
 *   const launched = yield* ServerProcess.spawnServer({ command: "java", args: ["-cp", "libs/*", "kafka.Kafka"], name: "broker" })
 *   yield* ServerProcess.awaitOutput(launched, "Kafka Server started", "90 seconds")
 * })
 * ```
 * @since 0.1.0
 */
export const awaitOutput = (
  launched: Launched,
  text: string,
  timeout: Duration.Input
): Effect.Effect<void, ServerProcessError> => {
  const printed = Effect.callback<void>((resume) => {
    const proc = launched.process
    // added after spawnServer's listeners, so the tail already holds the chunk being checked
    const onData = () => {
      if (launched.tail.text.includes(text)) resume(Effect.void)
    }
    proc.stdout.on("data", onData)
    proc.stderr.on("data", onData)
    onData()
    return Effect.sync(() => {
      proc.stdout.off("data", onData)
      proc.stderr.off("data", onData)
    })
  })
  return Effect.raceFirst(printed, exitedBeforeReady(launched)).pipe(
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () =>
        Effect.fail(
          fail(
            `${launched.name} not ready within ${Duration.format(Duration.fromInputUnsafe(timeout))}:\n${
              launched.tail.text.slice(-6000)
            }`
          )
        )
    })
  )
}

/**
 * Options of {@link awaitReady}.
 *
 * @since 0.1.0
 */
export interface ReadyOptions {
  /** How long the probe may keep failing. */
  readonly timeout: Duration.Input
  /** The pause between two probes (default 100 ms). */
  readonly spacing?: Duration.Input | undefined
  /** What the timeout error says was missing (default `"no answer"`): `"<what> within <timeout>"`. */
  readonly what?: string | undefined
}

/**
 * Runs `probe` (one round trip to the server) until it succeeds, spaced; fails when the server exits first or
 * when the timeout passes (with the tail of its output).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ServerProcess } from "@switchyard/core/testing"
 * const program = Effect.gen(function*() {
 *   const launched = yield* ServerProcess.spawnServer({ command: "python3", args: ["-m", "http.server", "8931"] })
 *   const ping = Effect.tryPromise(() => fetch("http://127.0.0.1:8931"))
 *   yield* ServerProcess.awaitReady(launched, ping, { timeout: "20 seconds", spacing: "50 millis" })
 * })
 * ```
 * @since 0.1.0
 */
export const awaitReady = <A, E, R>(
  launched: Launched,
  probe: Effect.Effect<A, E, R>,
  options: ReadyOptions
): Effect.Effect<A, ServerProcessError, R> => {
  const answered = probe.pipe(
    Effect.retry(Schedule.spaced(options.spacing ?? "100 millis")),
    Effect.mapError((e) => fail("the probe failed", e)),
    Effect.timeoutOrElse({
      duration: options.timeout,
      orElse: () =>
        Effect.fail(
          fail(
            `${options.what ?? "no answer"} within ${Duration.format(Duration.fromInputUnsafe(options.timeout))}\n${
              launched.tail.text.slice(-4000)
            }`
          )
        )
    })
  )
  return Effect.raceFirst(answered, exitedBeforeReady(launched))
}

const hasExited = (proc: ChildProcess) => proc.exitCode !== null || proc.signalCode !== null

const signalAndWait = (proc: ChildProcess, name: NodeJS.Signals) =>
  Effect.callback<void>((resume) => {
    const onExit = () => resume(Effect.void)
    proc.once("exit", onExit)
    proc.kill(name)
    return Effect.sync(() => proc.off("exit", onExit))
  })

/**
 * Stops a spawned server: SIGTERM, then SIGKILL once `grace` has passed, and waits for it to exit. Nothing
 * when there is none or it has exited already.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ServerProcess } from "@switchyard/core/testing"
 * const program = Effect.gen(function*() {
 *   const launched = yield* ServerProcess.spawnServer({ command: "sleep", args: ["60"] })
 *   yield* ServerProcess.stop(launched.process, "10 seconds")
 * })
 * ```
 * @since 0.1.0
 */
export const stop = (proc: ChildProcess | undefined, grace: Duration.Input): Effect.Effect<void> =>
  Effect.suspend(() =>
    proc === undefined || hasExited(proc)
      ? Effect.void
      : signalAndWait(proc, "SIGTERM").pipe(
        Effect.timeoutOrElse({ duration: grace, orElse: () => signalAndWait(proc, "SIGKILL") })
      )
  )

/**
 * Kills a spawned server (SIGKILL: a crash, no shutdown) and waits for it to exit. Nothing when there is none
 * or it has exited already.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ServerProcess } from "@switchyard/core/testing"
 * const program = Effect.gen(function*() {
 *   const launched = yield* ServerProcess.spawnServer({ command: "sleep", args: ["60"] })
 *   yield* ServerProcess.kill(launched.process)
 * })
 * ```
 * @since 0.1.0
 */
export const kill = (proc: ChildProcess | undefined): Effect.Effect<void> =>
  Effect.suspend(() => proc === undefined || hasExited(proc) ? Effect.void : signalAndWait(proc, "SIGKILL"))

/**
 * Whether a process with this pid exists (signal 0 only checks that it does).
 *
 * @example
 * ```ts
 * import { ServerProcess } from "@switchyard/core/testing"
 * const alive = ServerProcess.isRunning(process.pid)
 * ```
 * @since 0.1.0
 */
export const isRunning = (pid: number): boolean => Result.isSuccess(Result.try(() => process.kill(pid, 0)))

/**
 * The pid a pid file names (a server started detached writes one); `undefined` when there is no file or it
 * holds no pid.
 *
 * @example
 * ```ts
 * import { ServerProcess } from "@switchyard/core/testing"
 * const pid = ServerProcess.pidFromFile("/tmp/sy-redis-abc123/redis.pid")
 * ```
 * @since 0.1.0
 */
export const pidFromFile = (file: string): number | undefined => {
  const pid = Fs.existsSync(file) ? Number(Fs.readFileSync(file, "utf8").trim()) : Number.NaN
  return Number.isInteger(pid) && pid > 0 ? pid : undefined
}

/**
 * Options of {@link stopPid}.
 *
 * @since 0.1.0
 */
export interface StopPidOptions {
  /** The first signal (default SIGTERM). */
  readonly signal?: "SIGTERM" | "SIGKILL" | undefined
  /** How often to look whether it is gone. */
  readonly poll: Duration.Input
  /** After this, SIGKILL (not waited for). */
  readonly grace: Duration.Input
}

/**
 * Stops a server known by its pid (one started detached, whose pid file names it): signals it, waits until it
 * is gone (polled), and sends SIGKILL when `grace` passes. Nothing when it is not running.
 *
 * @example
 * ```ts
 * import { ServerProcess } from "@switchyard/core/testing"
 * const stopped = ServerProcess.stopPid(12345, { poll: "20 millis", grace: "20 seconds" })
 * ```
 * @since 0.1.0
 */
export const stopPid = (pid: number, options: StopPidOptions): Effect.Effect<void, ServerProcessError> =>
  Effect.suspend(() => {
    if (!isRunning(pid)) return Effect.void
    const signal = options.signal ?? "SIGTERM"
    return Effect.try({ try: () => process.kill(pid, signal), catch: (e) => fail(`cannot send ${signal} to ${pid}`, e) }).pipe(
      Effect.andThen(Effect.void.pipe(
        Effect.repeat({ schedule: Schedule.spaced(options.poll), until: () => !isRunning(pid) }),
        Effect.timeoutOrElse({
          duration: options.grace,
          orElse: () => Effect.ignore(Effect.try(() => process.kill(pid, "SIGKILL")))
        })
      ))
    )
  })
