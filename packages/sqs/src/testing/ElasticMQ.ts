/**
 * A real SQS server for tests: ElasticMQ (`org.elasticmq:elasticmq-server_2.13`) started from the jars on
 * Maven Central. No Docker: the jars are resolved once with Maven into
 * `~/.cache/switchyard/elasticmq-<version>/libs`, the server listens on a free `127.0.0.1` port, and its
 * messages and queues are stored in H2 in a private directory, so that {@link ElasticMQ.restart} loses nothing
 * that was confirmed.
 *
 * @since 0.1.0
 */
import type { ChildProcess } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { ListQueuesCommand, SQSClient } from "@aws-sdk/client-sqs"
import { ServerProcess } from "@switchyard/core/testing/server"
import { type Duration, Effect, Ref, Schema, type Scope } from "effect"

/**
 * The ElasticMQ version the test server runs.
 *
 * @since 0.1.0
 */
export const defaultVersion = "1.7.1"

/**
 * The region ElasticMQ answers for (any works; this one is in its queue URLs).
 *
 * @since 0.1.0
 */
export const region = "elasticmq"

/**
 * Test credentials (ElasticMQ accepts any).
 *
 * @since 0.1.0
 */
export const credentials = { accessKeyId: "switchyard", secretAccessKey: "switchyard" } as const

/**
 * Starting, resolving or stopping the server failed.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ElasticMQ } from "@switchyard/sqs/testing"
 * ElasticMQ.start().pipe(Effect.catchTag("ElasticMQError", (e) => Effect.die(e)))
 * ```
 * @since 0.1.0
 */
export class ElasticMQError extends Schema.TaggedError<ElasticMQError>()("ElasticMQError", {
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `elasticmq: ${this.reason}`
  }
}

/**
 * A running server.
 *
 * @since 0.1.0
 */
export interface ElasticMQ {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string
  /** Where messages and queues are stored. */
  readonly dataDir: string
  /**
   * Kills the server (SIGKILL: a crash) and starts it again on the same port and storage; everything it
   * confirmed is still there.
   */
  readonly restart: Effect.Effect<void, ElasticMQError>
  /** Stops the server; idempotent. */
  readonly stop: Effect.Effect<void>
}

/**
 * Options of {@link start}.
 *
 * @since 0.1.0
 */
export interface StartOptions {
  readonly version?: string | undefined
  /** Where the jars are cached; default `~/.cache/switchyard/elasticmq-<version>`. */
  readonly cacheDir?: string | undefined
  /** How long to wait for readiness; default 60 s. */
  readonly startTimeout?: Duration.Input | undefined
  /** Store messages and queues in H2 (default `true`; `false`: in memory, lost on restart). */
  readonly persistent?: boolean | undefined
  /** Print the server's output (default: only on failure). */
  readonly verbose?: boolean | undefined
}

const fail = (reason: string, cause?: unknown) => new ElasticMQError(cause === undefined ? { reason } : { reason, cause })

/** The kit's errors as this module's. */
const fromKit = (e: ServerProcess.ServerProcessError) => fail(e.reason, e.cause)

const logback = `<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level %logger{36} - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.elasticmq" level="INFO"/>
  <logger name="org.apache.pekko" level="WARN"/>
  <root level="WARN"><appender-ref ref="STDOUT"/></root>
</configuration>
`

/**
 * Resolves the server jars into the cache dir with Maven, once. Returns the cache dir (holding `libs/`).
 *
 * @example
 * ```ts
 * import { ElasticMQ } from "@switchyard/sqs/testing"
 * const dir = ElasticMQ.resolveJars("1.7.1")
 * ```
 * @since 0.1.0
 */
export const resolveJars = (version: string = defaultVersion, cacheDir?: string): Effect.Effect<string, ElasticMQError> =>
  Effect.gen(function*() {
    const dir = cacheDir ?? Path.join(Os.homedir(), ".cache", "switchyard", `elasticmq-${version}`)
    yield* ServerProcess.mavenClasspath({
      coordinates: [`org.elasticmq:elasticmq-server_2.13:${version}`],
      cacheDir: dir,
      label: `ElasticMQ ${version}`,
      project: "elasticmq-test-server"
    }).pipe(Effect.mapError(fromKit))
    yield* Effect.try({
      try: () => Fs.writeFileSync(Path.join(dir, "logback.xml"), logback),
      catch: (e) => fail("cannot write logback.xml", e)
    })
    return dir
  })

/**
 * A free TCP port on 127.0.0.1 (bind to port 0, read it, close).
 *
 * @example
 * ```ts
 * import { ElasticMQ } from "@switchyard/sqs/testing"
 * const port = ElasticMQ.freePort
 * ```
 * @since 0.1.0
 */
export const freePort: Effect.Effect<number, ElasticMQError> = Effect.mapError(ServerProcess.freePort, fromKit)

// H2 writes a commit to its file only after `WRITE_DELAY` (500 ms by default) while ElasticMQ answers a send
// once the commit returns, so a killed server lost what it confirmed in its last half second (196 of 10,000
// over two kills); with the write part of every commit it loses nothing (see `killChild`).
const serverConfig = (port: number, dataDir: string, persistent: boolean) => `include classpath("application.conf")
node-address { protocol = "http", host = "127.0.0.1", port = ${port}, context-path = "" }
rest-sqs { enabled = true, bind-port = ${port}, bind-hostname = "127.0.0.1", sqs-limits = strict }
generate-node-address = false
aws { region = "${region}", accountId = "000000000000" }
queues-storage { enabled = ${persistent}, path = ${JSON.stringify(Path.join(dataDir, "queues.conf"))} }
messages-storage { enabled = ${persistent}, uri = ${JSON.stringify(`jdbc:h2:${Path.join(dataDir, "elasticmq")};WRITE_DELAY=0`)} }
`

/** One `ListQueues`. */
const roundTrip = (endpoint: string) =>
  Effect.acquireUseRelease(
    Effect.sync(() => new SQSClient({ endpoint, region, credentials, maxAttempts: 1 })),
    (client) =>
      Effect.tryPromise({
        try: () => client.send(new ListQueuesCommand({})),
        catch: (e) => fail("ListQueues failed", e)
      }),
    (client) => Effect.sync(() => client.destroy())
  )

/** SIGTERM, then SIGKILL after 10 s; nothing when it has exited already. */
const stopChild = (proc: ChildProcess | undefined): Effect.Effect<void> => ServerProcess.stop(proc, "10 seconds")

/**
 * SIGKILL: the restart is a crash. ElasticMQ's graceful shutdown (SIGTERM) keeps answering sends after its
 * storage stopped, so messages it confirmed then are gone after the restart (measured: 17 of 10,000); killed,
 * with every commit flushed (`WRITE_DELAY=0`), it loses nothing it confirmed (0 of 10,000, twice).
 */
const killChild = (proc: ChildProcess | undefined): Effect.Effect<void> => ServerProcess.kill(proc)

/**
 * Starts a server in the current scope; the scope's close stops it and removes its storage. Resolves once it
 * answers `ListQueues`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ElasticMQ } from "@switchyard/sqs/testing"
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const server = yield* ElasticMQ.start()
 *   yield* Effect.log(server.endpoint)
 * }))
 * ```
 * @since 0.1.0
 */
export const start = (options: StartOptions = {}): Effect.Effect<ElasticMQ, ElasticMQError, Scope.Scope> =>
  Effect.gen(function*() {
    const version = options.version ?? defaultVersion
    const timeout = options.startTimeout ?? "60 seconds"
    const dir = yield* resolveJars(version, options.cacheDir)
    const port = yield* freePort
    const work = yield* Effect.mapError(ServerProcess.tempDir("switchyard-elasticmq-"), fromKit)
    const dataDir = Path.join(work, "data")
    const configFile = Path.join(work, "elasticmq.conf")
    yield* Effect.try({
      try: () => {
        Fs.mkdirSync(dataDir, { recursive: true })
        Fs.writeFileSync(configFile, serverConfig(port, dataDir, options.persistent ?? true))
      },
      catch: (e) => fail("cannot write the server config", e)
    })
    const args = [
      "-Xms64m",
      "-Xmx384m",
      "-XX:+UseSerialGC",
      "-XX:TieredStopAtLevel=1",
      "-Xshare:auto",
      "-Djava.awt.headless=true",
      `-Dconfig.file=${configFile}`,
      `-Dlogback.configurationFile=${Path.join(dir, "logback.xml")}`,
      "-cp",
      `${Path.join(dir, "libs")}${Path.sep}*`,
      "org.elasticmq.server.Main"
    ]
    const endpoint = `http://127.0.0.1:${port}`
    const current = yield* Ref.make<ChildProcess | undefined>(undefined)
    const launch = Effect.gen(function*() {
      const launched = yield* ServerProcess.spawnServer({
        command: "java",
        args,
        cwd: work,
        name: "server",
        verbose: options.verbose === true
      })
      yield* Ref.set(current, launched.process)
      yield* ServerProcess.awaitReady(launched, roundTrip(endpoint), { timeout, spacing: "100 millis" })
    }).pipe(Effect.mapError(fromKit))
    const stopProcess = Effect.flatMap(Ref.getAndSet(current, undefined), stopChild)
    const killProcess = Effect.flatMap(Ref.getAndSet(current, undefined), killChild)
    yield* Effect.addFinalizer(() => stopProcess)
    yield* launch.pipe(Effect.tapError(() => stopProcess))
    yield* Effect.logInfo(`ElasticMQ ${version} ready on ${endpoint}`)
    return {
      endpoint,
      dataDir,
      stop: stopProcess,
      restart: killProcess.pipe(Effect.andThen(launch.pipe(Effect.tapError(() => stopProcess))))
    } satisfies ElasticMQ
  })
