/**
 * A private RabbitMQ node for tests, started from the Debian `rabbitmq-server` scripts: its own node name,
 * free `127.0.0.1` ports (AMQP and Erlang distribution), and its database and logs in a temporary directory
 * (`RABBITMQ_MNESIA_BASE`, `RABBITMQ_LOG_BASE`), no plugins. It can be stopped and started again with the same
 * data (a broker restart that touches no other test's node), and it is stopped and deleted with its scope.
 *
 * @since 0.3.0
 */
import { execFile, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { ServerProcess } from "@switchyard/core/testing/server"
import * as amqp from "amqplib"
import { Duration, Effect, Schedule, Schema, type Scope } from "effect"

/**
 * Starting or stopping the node failed.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RabbitNode } from "@switchyard/amqp/testing"
 * RabbitNode.start().pipe(Effect.catchTag("RabbitNodeError", (e) => Effect.die(e)))
 * ```
 * @since 0.3.0
 */
export class RabbitNodeError extends Schema.TaggedError<RabbitNodeError>()("RabbitNodeError", {
  message: Schema.String
}) {}

/**
 * A running private node.
 *
 * @since 0.3.0
 */
export interface RabbitNode {
  /** The node name (`sy-<random>@localhost`). */
  readonly name: string
  readonly hostname: string
  /** Its AMQP port. */
  readonly port: number
  /** `amqp://guest:guest@127.0.0.1:<port>` */
  readonly url: string
  /** Its data and logs. */
  readonly directory: string
  /** Stops the node (SIGTERM, waits for it to exit); its data stays. */
  readonly stop: Effect.Effect<void, RabbitNodeError>
  /** Starts it again with the same data and ports; resolves once it accepts AMQP connections. */
  readonly start: Effect.Effect<void, RabbitNodeError>
  /** Runs `rabbitmqctl` against this node (e.g. `close_all_connections`, `list_queues`); gives its stdout. */
  readonly rabbitmqctl: (...args: ReadonlyArray<string>) => Effect.Effect<string, RabbitNodeError>
}

/**
 * Options of {@link start}.
 *
 * @since 0.3.0
 */
export interface Options {
  /** The server script (default: `$RABBITMQ_SERVER`, else `/usr/lib/rabbitmq/bin/rabbitmq-server`, else `rabbitmq-server`). */
  readonly command?: string | undefined
  /** Bound on a start (default 90 seconds). */
  readonly startTimeout?: Duration.Input | undefined
}

const defaultCommand = (): string =>
  process.env["RABBITMQ_SERVER"] ??
    (Fs.existsSync("/usr/lib/rabbitmq/bin/rabbitmq-server") ? "/usr/lib/rabbitmq/bin/rabbitmq-server" : "rabbitmq-server")

const fail = (message: string) => (error: unknown) =>
  new RabbitNodeError({ message: `${message}: ${error instanceof Error ? error.message : String(error)}` })

const freePort: Effect.Effect<number, RabbitNodeError> = Effect.mapError(ServerProcess.freePort, fail("finding a free port"))

interface Layout {
  readonly name: string
  readonly port: number
  readonly distPort: number
  readonly directory: string
  readonly command: string
}

const environment = (layout: Layout): NodeJS.ProcessEnv => {
  const at = (file: string) => Path.join(layout.directory, file)
  return {
    ...process.env,
    HOME: at("home"),
    RABBITMQ_NODENAME: layout.name,
    RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
    RABBITMQ_NODE_PORT: String(layout.port),
    RABBITMQ_DIST_PORT: String(layout.distPort),
    RABBITMQ_MNESIA_BASE: at("mnesia"),
    RABBITMQ_LOG_BASE: at("log"),
    RABBITMQ_LOGS: at("log/node.log"),
    RABBITMQ_ENABLED_PLUGINS_FILE: at("enabled_plugins"),
    RABBITMQ_CONFIG_FILE: at("rabbitmq"),
    RABBITMQ_ADVANCED_CONFIG_FILE: at("advanced.config"),
    RABBITMQ_CONF_ENV_FILE: at("rabbitmq-env.conf"),
    RABBITMQ_PID_FILE: at("node.pid")
  }
}

const prepare = (layout: Layout): Effect.Effect<void, RabbitNodeError> =>
  Effect.try({
    try: () => {
      for (const dir of ["home", "mnesia", "log"]) Fs.mkdirSync(Path.join(layout.directory, dir), { recursive: true })
      Fs.writeFileSync(Path.join(layout.directory, "enabled_plugins"), "[].\n")
      Fs.writeFileSync(Path.join(layout.directory, "rabbitmq.conf"), "loopback_users = none\n")
    },
    catch: fail("preparing the node's directory")
  })

const spawnNode = (layout: Layout): Effect.Effect<void, RabbitNodeError> =>
  Effect.try({
    try: () => {
      const out = Fs.openSync(Path.join(layout.directory, "log", "server.out"), "a")
      const child = spawn(layout.command, [], { env: environment(layout), detached: true, stdio: ["ignore", out, out] })
      child.unref()
      Fs.closeSync(out)
    },
    catch: fail(`starting ${layout.command}`)
  })

const acceptsAmqp = (url: string): Effect.Effect<void, RabbitNodeError> =>
  Effect.tryPromise({ try: () => amqp.connect(url).then((c) => c.close()), catch: fail("connecting") })

const nodePid = (layout: Layout): number | undefined => ServerProcess.pidFromFile(Path.join(layout.directory, "node.pid"))

const stopNode = (layout: Layout): Effect.Effect<void, RabbitNodeError> =>
  Effect.suspend(() => {
    const pid = nodePid(layout)
    if (pid === undefined || !ServerProcess.isRunning(pid)) return Effect.void
    return ServerProcess.stopPid(pid, { poll: "100 millis", grace: "30 seconds" }).pipe(
      Effect.mapError(fail("stopping the node")),
      Effect.andThen(Effect.sync(() => Fs.rmSync(Path.join(layout.directory, "node.pid"), { force: true })))
    )
  })

const startNode = (layout: Layout, url: string, timeout: Duration.Duration): Effect.Effect<void, RabbitNodeError> =>
  spawnNode(layout).pipe(
    Effect.andThen(acceptsAmqp(url).pipe(Effect.retry(Schedule.spaced("250 millis")))),
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () =>
        Effect.fail(new RabbitNodeError({
          message: `node ${layout.name} did not accept connections within ${Duration.format(timeout)} (see ${layout.directory}/log)`
        }))
    }),
    Effect.onError(() => Effect.ignore(stopNode(layout)))
  )

const ctlCommand = (layout: Layout): string => {
  const sibling = Path.join(Path.dirname(layout.command), "rabbitmqctl")
  return Fs.existsSync(sibling) ? sibling : "rabbitmqctl"
}

/** rabbitmqctl with the node's HOME, so that it reads the node's Erlang cookie. */
const rabbitmqctl = (layout: Layout) => (...args: ReadonlyArray<string>): Effect.Effect<string, RabbitNodeError> =>
  Effect.callback<string, RabbitNodeError>((resume) => {
    execFile(ctlCommand(layout), ["-n", layout.name, ...args], { env: environment(layout), timeout: 120_000 }, (error, stdout, stderr) =>
      resume(error === null ? Effect.succeed(stdout) : Effect.fail(fail(`rabbitmqctl ${args.join(" ")}`)(`${error.message} ${stderr}`))))
  })

/**
 * Starts a private node in the current scope; closing the scope stops it and deletes its directory.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { AmqpBroker } from "@switchyard/amqp"
 * import { RabbitNode } from "@switchyard/amqp/testing"
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const node = yield* RabbitNode.start()
 *   const broker = AmqpBroker.layer({ url: node.url })
 *   yield* node.stop // a broker restart
 *   yield* node.start
 * }))
 * ```
 * @category constructors
 * @since 0.3.0
 */
export const start = Effect.fn("RabbitNode.start")(function*(
  options: Options = {}
): Effect.fn.Return<RabbitNode, RabbitNodeError, Scope.Scope> {
    const id = globalThis.crypto.randomUUID().replaceAll("-", "").slice(0, 10)
    // removed when the scope closes, after the node's finalizer below stopped it
    const directory = yield* Effect.mapError(ServerProcess.tempDir(`sy-rabbit-${id}-`), fail("creating a temporary directory"))
    const layout: Layout = {
      name: `sy-${id}@localhost`,
      port: yield* freePort,
      distPort: yield* freePort,
      directory,
      command: options.command ?? defaultCommand()
    }
    const url = `amqp://guest:guest@127.0.0.1:${layout.port}`
    const timeout = Duration.fromInputUnsafe(options.startTimeout ?? "90 seconds")
    yield* Effect.addFinalizer(() => Effect.ignore(stopNode(layout)))
    yield* prepare(layout)
    yield* startNode(layout, url, timeout)
    return {
      name: layout.name,
      hostname: "127.0.0.1",
      port: layout.port,
      url,
      directory,
      stop: stopNode(layout),
      start: startNode(layout, url, timeout),
      rabbitmqctl: rabbitmqctl(layout)
    } satisfies RabbitNode
  })
