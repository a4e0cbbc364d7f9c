/**
 * A private nats-server (JetStream, file storage in a temp dir, free port) for tests that restart the
 * broker; never touches the shared server on 4222. The process is killed in the scope's finalizer.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { type AddressInfo, createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Scope } from "effect"
import { Effect, Layer } from "effect"
import type { Broker, Errors } from "@switchyard/core"
import type { JetStream, NatsConnection } from "../src/index.ts"
import { NatsBroker } from "../src/index.ts"

const binary = process.env["NATS_SERVER_BIN"] ?? "/usr/sbin/nats-server"

const freePort = Effect.callback<number, Error>((resume) => {
  const srv = createServer()
  srv.once("error", (e) => resume(Effect.fail(e)))
  srv.listen(0, "127.0.0.1", () => {
    const { port } = srv.address() as AddressInfo
    srv.close(() => resume(Effect.succeed(port)))
  })
})

const startProcess = (port: number, dir: string, options: Options) =>
  Effect.callback<ChildProcess, Error>((resume) => {
    const auth = options.token !== undefined
      ? ["--auth", options.token]
      : options.user !== undefined
      ? ["--user", options.user.name, "--pass", options.user.password]
      : []
    if (options.config !== undefined) {
      const file = join(dir, "server.conf")
      writeFileSync(file, options.config)
      auth.push("-c", file)
    }
    const proc = spawn(binary, ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir, ...auth], {
      stdio: ["ignore", "ignore", "pipe"]
    })
    let log = ""
    let ready = false
    proc.stderr?.on("data", (chunk: Buffer) => {
      if (ready) return
      log += chunk.toString()
      if (log.includes("Server is ready")) {
        ready = true
        resume(Effect.succeed(proc))
      }
    })
    proc.once("error", (e) => resume(Effect.fail(e)))
    proc.once("exit", (code) => {
      if (!ready) resume(Effect.fail(new Error(`nats-server exited (${code}) before it was ready: ${log}`)))
    })
    return Effect.sync(() => proc.kill("SIGKILL"))
  }).pipe(Effect.timeout("20 seconds"))

const stopProcess = (proc: ChildProcess) =>
  Effect.callback<void>((resume) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resume(Effect.void)
    proc.once("exit", () => resume(Effect.void))
    proc.kill("SIGTERM")
  }).pipe(
    Effect.timeout("10 seconds"),
    Effect.catch(() => Effect.sync(() => proc.kill("SIGKILL")))
  )

export interface Options {
  readonly token?: string
  readonly user?: { readonly name: string; readonly password: string }
  /** nats-server configuration file contents (e.g. an nkey authorization block). */
  readonly config?: string
}

export interface PrivateServer {
  /** Starts the server in the current scope (stopped, storage removed, when it closes); the URL. */
  readonly start: Effect.Effect<string, Error, Scope.Scope>
  /** The JetStream broker on a freshly started private server (stopped when the layer is released). */
  readonly brokerLayer: (
    options?: JetStream.Options
  ) => Layer.Layer<Broker.Broker | JetStream.JetStream | NatsConnection.NatsConnection, Error | Errors.ConnectionError>
  /** Stops the server gracefully and starts it again on the same port and storage. */
  readonly restart: Effect.Effect<void, Error>
}

export const PrivateServer = {
  make: (options: Options = {}): PrivateServer => {
    const state: { port: number; dir: string; proc: ChildProcess | undefined } = { port: 0, dir: "", proc: undefined }
    const start = Effect.acquireRelease(
      Effect.gen(function*() {
        state.port = yield* freePort
        state.dir = mkdtempSync(join(tmpdir(), "switchyard-nats-"))
        state.proc = yield* startProcess(state.port, state.dir, options)
        return `nats://127.0.0.1:${state.port}`
      }),
      () =>
        Effect.gen(function*() {
          if (state.proc !== undefined) yield* stopProcess(state.proc)
          state.proc = undefined
          rmSync(state.dir, { recursive: true, force: true })
        })
    )
    const restart = Effect.gen(function*() {
      if (state.proc !== undefined) yield* stopProcess(state.proc)
      state.proc = undefined
      state.proc = yield* startProcess(state.port, state.dir, options)
      yield* Effect.logInfo("private nats-server restarted", { port: state.port })
    })
    const brokerLayer = (options: JetStream.Options = {}) =>
      Layer.unwrap(Effect.map(start, (url) =>
        NatsBroker.layer({
          ...options,
          connection: { servers: url, name: "switchyard-private", reconnect: { wait: "200 millis", maxAttempts: -1 } }
        })))
    return { start, brokerLayer, restart }
  }
}
