/**
 * A private `redis-server` for tests: its own free `127.0.0.1` port and its own directory, with AOF on
 * (`appendfsync always`: every write acknowledged to a client is on disk), so a restart keeps every
 * confirmed entry. It can be stopped (SIGTERM), killed (SIGKILL), started again on the same port and data,
 * and it is stopped and deleted with its scope. The shared test server (6379) keeps nothing on disk; restart
 * tests use one of these.
 *
 * @since 0.1.0
 */
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { ServerProcess } from "@switchyard/core/testing/server"
import { Duration, Effect, Schedule, Schema, type Scope } from "effect"

/**
 * Starting or stopping the server failed.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RedisServer } from "@switchyard/redis/testing"
 * RedisServer.start().pipe(Effect.catchTag("RedisServerError", (e) => Effect.die(e)))
 * ```
 * @since 0.1.0
 */
export class RedisServerError extends Schema.TaggedError<RedisServerError>()("RedisServerError", {
  message: Schema.String
}) {}

/**
 * A running private server.
 *
 * @since 0.1.0
 */
export interface RedisServer {
  readonly port: number
  /** `redis://127.0.0.1:<port>` */
  readonly url: string
  /** Its AOF files, config and log. */
  readonly directory: string
  /** Stops the server (SIGTERM: it finishes the AOF and exits); its data stays. */
  readonly stop: Effect.Effect<void, RedisServerError>
  /** Kills the server (SIGKILL, no shutdown); with `appendfsync always` nothing acknowledged is lost. */
  readonly kill: Effect.Effect<void, RedisServerError>
  /** Starts it again with the same data and port; resolves once it answers `PING`. */
  readonly start: Effect.Effect<void, RedisServerError>
  /** Stops and starts it. */
  readonly restart: Effect.Effect<void, RedisServerError>
}

/**
 * Options of {@link start}.
 *
 * @since 0.1.0
 */
export interface Options {
  /** The binary (default `$REDIS_SERVER`, else `redis-server` on the PATH). */
  readonly command?: string | undefined
  /** Bound on a start (default 20 seconds). */
  readonly startTimeout?: Duration.Input | undefined
  /** Extra `redis.conf` lines. */
  readonly config?: ReadonlyArray<string> | undefined
}

const fail = (message: string) => (error: unknown) =>
  new RedisServerError({ message: `${message}: ${error instanceof Error ? error.message : String(error)}` })

interface Layout {
  readonly port: number
  readonly directory: string
  readonly command: string
}

const pidFile = (layout: Layout) => Path.join(layout.directory, "redis.pid")

const writeConfig = (layout: Layout, extra: ReadonlyArray<string>): Effect.Effect<void, RedisServerError> =>
  Effect.try({
    try: () =>
      Fs.writeFileSync(
        Path.join(layout.directory, "redis.conf"),
        [
          `port ${layout.port}`,
          "bind 127.0.0.1",
          `dir ${layout.directory}`,
          "appendonly yes",
          "appendfsync always",
          `save ""`,
          `pidfile ${pidFile(layout)}`,
          `logfile ${Path.join(layout.directory, "redis.log")}`,
          "daemonize no",
          ...extra
        ].join("\n") + "\n"
      ),
    catch: fail("writing redis.conf")
  })

const pidOf = (layout: Layout): number | undefined => ServerProcess.pidFromFile(pidFile(layout))

const answersPing = (port: number): Effect.Effect<void, RedisServerError> =>
  Effect.callback<void, RedisServerError>((resume) => {
    const socket = Net.connect(port, "127.0.0.1")
    socket.setTimeout(1000)
    let reply = ""
    socket.on("connect", () => socket.write("PING\r\n"))
    socket.on("data", (data) => {
      reply += data.toString()
      if (reply.includes("\r\n")) {
        socket.destroy()
        // a server with `requirepass` answers NOAUTH: it is up
        resume(reply.startsWith("+PONG") || reply.startsWith("-NOAUTH") ? Effect.void : Effect.fail(new RedisServerError({ message: `PING answered ${reply.trim()}` })))
      }
    })
    socket.on("timeout", () => {
      socket.destroy()
      resume(Effect.fail(new RedisServerError({ message: "PING timed out" })))
    })
    socket.on("error", (error) => resume(Effect.fail(fail("connecting")(error))))
  })

const startServer = (layout: Layout, timeout: Duration.Duration): Effect.Effect<void, RedisServerError> =>
  Effect.try({
    try: () => {
      const child = spawn(layout.command, [Path.join(layout.directory, "redis.conf")], { detached: true, stdio: "ignore" })
      child.unref()
    },
    catch: fail(`starting ${layout.command}`)
  }).pipe(
    Effect.andThen(answersPing(layout.port).pipe(Effect.retry(Schedule.spaced("50 millis")))),
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () =>
        Effect.fail(new RedisServerError({
          message: `redis-server did not answer on ${layout.port} within ${Duration.format(timeout)} (see ${layout.directory}/redis.log)`
        }))
    })
  )

const signal = (layout: Layout, name: "SIGTERM" | "SIGKILL"): Effect.Effect<void, RedisServerError> =>
  Effect.suspend(() => {
    const pid = pidOf(layout)
    if (pid === undefined || !ServerProcess.isRunning(pid)) return Effect.void
    return ServerProcess.stopPid(pid, { signal: name, poll: "20 millis", grace: "20 seconds" }).pipe(
      Effect.mapError(fail(`${name} to redis-server`)),
      Effect.andThen(Effect.sync(() => Fs.rmSync(pidFile(layout), { force: true })))
    )
  })

/**
 * Starts a private server in the current scope; closing the scope stops it and deletes its directory.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RedisBroker } from "@switchyard/redis"
 * import { RedisServer } from "@switchyard/redis/testing"
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const server = yield* RedisServer.start()
 *   const broker = RedisBroker.layer({ url: server.url })
 *   yield* server.restart
 * }))
 * ```
 * @category constructors
 * @since 0.1.0
 */
export const start = Effect.fn("RedisServer.start")(function*(
  options: Options = {}
): Effect.fn.Return<RedisServer, RedisServerError, Scope.Scope> {
  // removed when the scope closes, after the server's finalizer below stopped it
  const directory = yield* Effect.mapError(ServerProcess.tempDir("sy-redis-"), fail("creating a temporary directory"))
  const layout: Layout = {
    port: yield* Effect.mapError(ServerProcess.freePort, fail("finding a free port")),
    directory,
    command: options.command ?? process.env["REDIS_SERVER"] ?? "redis-server"
  }
  const timeout = Duration.fromInputUnsafe(options.startTimeout ?? "20 seconds")
  yield* Effect.addFinalizer(() => Effect.ignore(signal(layout, "SIGTERM")))
  yield* writeConfig(layout, options.config ?? [])
  yield* startServer(layout, timeout)
  const stop = signal(layout, "SIGTERM")
  const begin = startServer(layout, timeout)
  return {
    port: layout.port,
    url: `redis://127.0.0.1:${layout.port}`,
    directory,
    stop,
    kill: signal(layout, "SIGKILL"),
    start: begin,
    restart: Effect.andThen(stop, begin)
  } satisfies RedisServer
})
