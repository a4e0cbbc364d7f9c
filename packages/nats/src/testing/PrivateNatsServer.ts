/**
 * A private nats-server for tests: its own process (JetStream on, file storage in a temporary directory,
 * a free port on 127.0.0.1), so a test can restart or misconfigure the broker without touching a shared
 * server. An Effect scoped resource: the process is stopped and its storage removed when the scope closes.
 * Needs the `nats-server` binary (`NATS_SERVER_BIN`, default `/usr/sbin/nats-server`).
 *
 * @since 0.3.0
 */
import type { ChildProcess } from "node:child_process"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import type { Broker, Errors } from "@switchyard/core"
import { ServerProcess } from "@switchyard/core/testing/server"
import { Effect, Layer, Option, type Scope, SynchronizedRef } from "effect"
import * as NatsBroker from "../NatsBroker.ts"
import type * as NatsConnection from "../NatsConnection.ts"
import type { NatsTopology } from "../NatsTopology.ts"

/**
 * Options of {@link make}.
 *
 * @example
 * ```ts
 * import type { PrivateNatsServer } from "@switchyard/nats/testing"
 * const options: PrivateNatsServer.Options = { user: { name: "svc", password: "pa55-w0rd" } }
 * ```
 * @since 0.3.0
 */
export interface Options {
  /** Require this token (`--auth`). */
  readonly token?: string | undefined
  /** Require this user and password (`--user`, `--pass`). */
  readonly user?: { readonly name: string; readonly password: string } | undefined
  /** nats-server configuration file contents (TLS, an nkey authorization block, operator mode, …). */
  readonly config?: string | undefined
  /** The nats-server binary (default `NATS_SERVER_BIN` or `/usr/sbin/nats-server`). */
  readonly binary?: string | undefined
}

/**
 * A running private server.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { PrivateNatsServer } from "@switchyard/nats/testing"
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const server = yield* PrivateNatsServer.make()
 *   yield* server.restart
 *   return server.url
 * }))
 * ```
 * @since 0.3.0
 */
export interface PrivateNatsServer {
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string
  readonly port: number
  /** Stops the server gracefully (SIGTERM) and starts it again on the same port and storage. */
  readonly restart: Effect.Effect<void, Error>
}

const argumentsOf = (port: number, dir: string, options: Options): ReadonlyArray<string> => {
  const auth = options.token !== undefined
    ? ["--auth", options.token]
    : options.user !== undefined
    ? ["--user", options.user.name, "--pass", options.user.password]
    : []
  const config = options.config === undefined ? [] : ["-c", join(dir, "server.conf")]
  return ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir, ...auth, ...config]
}

/** Starts the process; succeeds once it logs "Server is ready" (killed when it does not, within 20 s). */
const startProcess = (port: number, dir: string, options: Options): Effect.Effect<ChildProcess, Error> =>
  Effect.gen(function*() {
    const config = options.config
    if (config !== undefined) {
      yield* Effect.try({
        try: () => writeFileSync(join(dir, "server.conf"), config),
        catch: (e) => new Error("cannot write the nats-server configuration", { cause: e })
      })
    }
    const launched = yield* ServerProcess.spawnServer({
      command: options.binary ?? process.env["NATS_SERVER_BIN"] ?? "/usr/sbin/nats-server",
      args: argumentsOf(port, dir, options),
      name: "nats-server"
    })
    yield* ServerProcess.awaitOutput(launched, "Server is ready", "20 seconds").pipe(
      Effect.onError(() => ServerProcess.kill(launched.process))
    )
    return launched.process
  })

const stopProcess = (proc: ChildProcess): Effect.Effect<void> => ServerProcess.stop(proc, "10 seconds")

/**
 * Starts a private server in the current scope (stopped, storage removed, when the scope closes).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { PrivateNatsServer } from "@switchyard/nats/testing"
 * const url = Effect.scoped(Effect.map(PrivateNatsServer.make({ token: "s3cr3t" }), (server) => server.url))
 * ```
 * @category constructors
 * @since 0.3.0
 */
export const make = Effect.fn("PrivateNatsServer.make")(function*(
  options: Options = {}
): Effect.fn.Return<PrivateNatsServer, Error, Scope.Scope> {
  const port = yield* ServerProcess.freePort
  const dir = yield* ServerProcess.tempDir("switchyard-nats-")
  const proc = yield* Effect.acquireRelease(
    Effect.flatMap(startProcess(port, dir, options), SynchronizedRef.make),
    (ref) => Effect.flatMap(SynchronizedRef.get(ref), stopProcess)
  )
  const restart = SynchronizedRef.updateEffect(proc, (running) =>
    stopProcess(running).pipe(
      Effect.andThen(startProcess(port, dir, options)),
      Effect.tap(() => Effect.logInfo("private nats-server restarted", { port }))
    ))
  return { url: `nats://127.0.0.1:${port}`, port, restart }
})

/**
 * A server started by a layer, with a `restart` usable outside it (e.g. by a conformance suite, whose
 * broker layer and restart effect are given separately).
 *
 * @example
 * ```ts
 * import { PrivateNatsServer } from "@switchyard/nats/testing"
 * const server = PrivateNatsServer.handle()
 * const broker = server.brokerLayer({ consumer: { ackWait: "5 seconds" } })
 * const restart = server.restart
 * ```
 * @since 0.3.0
 */
export interface Handle {
  /** Starts the server in the current scope (the latest one started is the one `restart` restarts). */
  readonly start: Effect.Effect<PrivateNatsServer, Error, Scope.Scope>
  /** The JetStream broker on a freshly started server (stopped when the layer is released). */
  readonly brokerLayer: (
    options?: NatsBroker.JetStreamOptions
  ) => Layer.Layer<Broker.Broker | NatsTopology | NatsConnection.NatsConnection, Error | Errors.ConnectionError>
  /** Restarts the latest server started (fails when none is running). */
  readonly restart: Effect.Effect<void, Error>
}

/**
 * Makes a {@link Handle}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { PrivateNatsServer } from "@switchyard/nats/testing"
 * const server = PrivateNatsServer.handle({ token: "s3cr3t" })
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const { url } = yield* server.start
 *   yield* server.restart
 *   return url
 * }))
 * ```
 * @category constructors
 * @since 0.3.0
 */
export const handle = (options: Options = {}): Handle => {
  const latest = SynchronizedRef.makeUnsafe(Option.none<PrivateNatsServer>())
  const start = Effect.tap(make(options), (server) => SynchronizedRef.set(latest, Option.some(server)))
  const restart = Effect.flatMap(
    SynchronizedRef.get(latest),
    Option.match({
      onNone: () => Effect.fail(new Error("no private nats-server is running")),
      onSome: (server) => server.restart
    })
  )
  const brokerLayer = (jetStream: NatsBroker.JetStreamOptions = {}) =>
    Layer.unwrap(Effect.map(start, ({ url }) =>
      NatsBroker.layer({
        ...jetStream,
        connection: { servers: url, name: "switchyard-private", reconnect: { wait: "200 millis", maxAttempts: -1 } }
      })))
  return { start, brokerLayer, restart }
}
