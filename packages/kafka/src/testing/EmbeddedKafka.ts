/**
 * A real, single-node Apache Kafka broker (KRaft: broker + controller in one JVM) for tests, started from the
 * jars on Maven Central. No Docker: the jars are resolved once with Maven into
 * `~/.cache/switchyard/kafka-<version>/libs`, a fresh log dir is formatted with a random cluster id and the
 * broker listens on free `127.0.0.1` ports.
 *
 * @since 0.1.0
 */
import type { ChildProcess } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { ServerProcess } from "@switchyard/core/testing/server"
import { type Duration, Effect, Ref, Schema, Scope } from "effect"
import { Kafka, logLevel } from "kafkajs"

/**
 * The Kafka version the test broker runs.
 *
 * @since 0.1.0
 */
export const defaultVersion = "4.1.1"

/** log4j2 version matching the broker's own log4j-api/core. */
const log4jVersion = "2.24.3"

/**
 * Starting, resolving or stopping the embedded broker failed.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { EmbeddedKafka } from "@switchyard/kafka/testing"
 * EmbeddedKafka.start().pipe(Effect.catchTag("EmbeddedKafkaError", (e) => Effect.die(e)))
 * ```
 * @since 0.1.0
 */
export class EmbeddedKafkaError extends Schema.TaggedError<EmbeddedKafkaError>()("EmbeddedKafkaError", {
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message(): string {
    return `embedded kafka: ${this.reason}`
  }
}

/**
 * A running embedded broker.
 *
 * @since 0.1.0
 */
export interface EmbeddedKafka {
  /** `127.0.0.1:<port>` (PLAINTEXT) */
  readonly bootstrap: string
  /** With `sasl`: the SASL_PLAINTEXT listener, accepting {@link saslUser} over PLAIN and SCRAM-SHA-256. */
  readonly saslBootstrap: string | undefined
  readonly logDir: string
  /** Stops the broker (SIGTERM, then SIGKILL) and starts it again on the same log dir and ports. */
  readonly restart: Effect.Effect<void, EmbeddedKafkaError>
  /** Stops the broker; idempotent. */
  readonly stop: Effect.Effect<void>
}

/**
 * Options of {@link start}.
 *
 * @since 0.1.0
 */
export interface StartOptions {
  readonly version?: string | undefined
  /** Where the jars are cached; default `~/.cache/switchyard/kafka-<version>`. */
  readonly cacheDir?: string | undefined
  /** How long to wait for readiness; default 90 s. */
  readonly startTimeout?: Duration.Input | undefined
  /** Extra `server.properties` entries. */
  readonly properties?: Readonly<Record<string, string>> | undefined
  /** Print the broker's output (default: only on failure). */
  readonly verbose?: boolean | undefined
  /** Also open a SASL_PLAINTEXT listener with {@link saslUser} (PLAIN and SCRAM-SHA-256). */
  readonly sasl?: boolean | undefined
}

/**
 * The user the SASL listener accepts (test credentials, not a secret).
 *
 * @since 0.1.0
 */
export const saslUser = { username: "switchyard", password: "switchyard-test-password" } as const

const fail = (reason: string, cause?: unknown) =>
  new EmbeddedKafkaError(cause === undefined ? { reason } : { reason, cause })

/** The kit's errors as this module's. */
const fromKit = (e: ServerProcess.ServerProcessError) => fail(e.reason, e.cause)

const log4jConfig = `status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.controller.name = org.apache.kafka.controller
logger.controller.level = WARN
logger.raft.name = org.apache.kafka.raft
logger.raft.level = WARN
`

/**
 * Resolves the broker jars (Kafka + the log4j2 binding) into the cache dir with Maven, once. Returns the
 * cache dir, holding `libs/` and `log4j2.properties`.
 *
 * @example
 * ```ts
 * import { EmbeddedKafka } from "@switchyard/kafka/testing"
 * const dir = EmbeddedKafka.resolveJars("4.1.1")
 * ```
 * @since 0.1.0
 */
export const resolveJars = (version: string = defaultVersion, cacheDir?: string): Effect.Effect<string, EmbeddedKafkaError> =>
  Effect.gen(function*() {
    const dir = cacheDir ?? Path.join(Os.homedir(), ".cache", "switchyard", `kafka-${version}`)
    yield* ServerProcess.mavenClasspath({
      coordinates: [
        `org.apache.kafka:kafka_2.13:${version}`,
        `org.apache.logging.log4j:log4j-api:${log4jVersion}`,
        `org.apache.logging.log4j:log4j-core:${log4jVersion}`,
        `org.apache.logging.log4j:log4j-slf4j-impl:${log4jVersion}`
      ],
      cacheDir: dir,
      label: `Apache Kafka ${version}`,
      project: "kafka-test-broker"
    }).pipe(Effect.mapError(fromKit))
    yield* Effect.try({
      try: () => Fs.writeFileSync(Path.join(dir, "log4j2.properties"), log4jConfig),
      catch: (e) => fail("cannot write log4j2.properties", e)
    })
    return dir
  })

/**
 * A free TCP port on 127.0.0.1 (bind to port 0, read it, close).
 *
 * @example
 * ```ts
 * import { EmbeddedKafka } from "@switchyard/kafka/testing"
 * const port = EmbeddedKafka.freePort
 * ```
 * @since 0.1.0
 */
export const freePort: Effect.Effect<number, EmbeddedKafkaError> = Effect.mapError(ServerProcess.freePort, fromKit)

const serverProperties = (
  logDir: string,
  port: number,
  controllerPort: number,
  saslPort: number | undefined,
  extra: Readonly<Record<string, string>>
) => {
  const sasl: Record<string, string> = saslPort === undefined ? {} : {
    "listeners": `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort},SASL_PLAINTEXT://127.0.0.1:${saslPort}`,
    "advertised.listeners": `PLAINTEXT://127.0.0.1:${port},SASL_PLAINTEXT://127.0.0.1:${saslPort}`,
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
    "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256",
    "listener.name.sasl_plaintext.plain.sasl.jaas.config":
      `org.apache.kafka.common.security.plain.PlainLoginModule required user_${saslUser.username}="${saslUser.password}";`,
    "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config":
      "org.apache.kafka.common.security.scram.ScramLoginModule required;"
  }
  const props: Record<string, string> = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.quorum.voters": `1@127.0.0.1:${controllerPort}`,
    "listeners": `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    "advertised.listeners": `PLAINTEXT://127.0.0.1:${port}`,
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "log.dirs": logDir,
    "num.partitions": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",
    "auto.create.topics.enable": "false",
    "delete.topic.enable": "true",
    "log.flush.interval.messages": "9223372036854775807",
    ...sasl,
    ...extra
  }
  return Object.entries(props).map(([k, v]) => `${k}=${v}`).join("\n") + "\n"
}

/** One admin round trip (connect, describe the cluster, list the topics). */
const adminRoundTrip = (bootstrap: string) =>
  Effect.acquireUseRelease(
    Effect.sync(() => new Kafka({ clientId: "switchyard-embedded", brokers: [bootstrap], logLevel: logLevel.NOTHING }).admin()),
    (admin) =>
      Effect.tryPromise({
        try: async () => {
          await admin.connect()
          await admin.describeCluster()
          await admin.listTopics()
        },
        catch: (e) => fail("admin round trip failed", e)
      }),
    (admin) => Effect.promise(() => admin.disconnect().catch(() => undefined))
  )

// like Kafka's Uuid.randomUuid: never starting with "-", which the storage tool's argument parser reads as a flag
const newClusterId = (): string => {
  const id = randomBytes(16).toString("base64url")
  return id.startsWith("-") ? newClusterId() : id
}

/**
 * Starts a broker in the current scope; the scope's close stops it (SIGTERM, then SIGKILL after 10 s) and
 * removes its log dir. Resolves after "Kafka Server started" and an admin round trip.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { EmbeddedKafka } from "@switchyard/kafka/testing"
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const kafka = yield* EmbeddedKafka.start()
 *   yield* Effect.log(kafka.bootstrap)
 * }))
 * ```
 * @since 0.1.0
 */
export const start = (options: StartOptions = {}): Effect.Effect<EmbeddedKafka, EmbeddedKafkaError, Scope.Scope> =>
  Effect.gen(function*() {
    const version = options.version ?? defaultVersion
    const timeout = options.startTimeout ?? "90 seconds"
    const dir = yield* resolveJars(version, options.cacheDir)
    const port = yield* freePort
    const controllerPort = yield* freePort
    const saslPort = options.sasl === true ? yield* freePort : undefined
    const work = yield* Effect.mapError(ServerProcess.tempDir("switchyard-kafka-"), fromKit)
    const logDir = Path.join(work, "data")
    const propsFile = Path.join(work, "server.properties")
    yield* Effect.try({
      try: () => Fs.writeFileSync(propsFile, serverProperties(logDir, port, controllerPort, saslPort, options.properties ?? {})),
      catch: (e) => fail("cannot write server.properties", e)
    })
    const classpath = `${Path.join(dir, "libs")}${Path.sep}*`
    const jvm = [
      "-Xms256m",
      "-Xmx512m",
      "-XX:+UseG1GC",
      "-XX:TieredStopAtLevel=1",
      "-Djava.awt.headless=true",
      `-Dlog4j2.configurationFile=${Path.join(dir, "log4j2.properties")}`,
      "-cp",
      classpath
    ]
    const clusterId = newClusterId()
    const scram = saslPort === undefined
      ? []
      : ["--add-scram", `SCRAM-SHA-256=[name=${saslUser.username},password=${saslUser.password}]`]
    yield* ServerProcess.runToCompletion(
      "java",
      [...jvm, "kafka.tools.StorageTool", "format", "-t", clusterId, "-c", propsFile, "--ignore-formatted", ...scram],
      work
    ).pipe(Effect.mapError(fromKit))

    const current = yield* Ref.make<ChildProcess | undefined>(undefined)
    const spawnBroker = ServerProcess.spawnServer({
      command: "java",
      args: [...jvm, "kafka.Kafka", propsFile],
      cwd: work,
      name: "broker",
      verbose: options.verbose === true
    }).pipe(Effect.tap((launched) => Ref.set(current, launched.process)))
    const launch = spawnBroker.pipe(
      Effect.flatMap((launched) =>
        ServerProcess.awaitOutput(launched, "Kafka Server started", timeout).pipe(
          Effect.andThen(ServerProcess.awaitReady(launched, adminRoundTrip(`127.0.0.1:${port}`), {
            timeout,
            spacing: "250 millis",
            what: "no admin round trip"
          }))
        )
      ),
      Effect.mapError(fromKit)
    )
    const stopProcess = Effect.flatMap(Ref.getAndSet(current, undefined), (proc) => ServerProcess.stop(proc, "10 seconds"))

    yield* Effect.addFinalizer(() => stopProcess)
    yield* launch.pipe(Effect.tapError(() => stopProcess))
    const bootstrap = `127.0.0.1:${port}`
    yield* Effect.logInfo(`embedded Kafka ${version} ready on ${bootstrap}`)
    return {
      bootstrap,
      saslBootstrap: saslPort === undefined ? undefined : `127.0.0.1:${saslPort}`,
      logDir,
      stop: stopProcess,
      restart: stopProcess.pipe(Effect.andThen(launch.pipe(Effect.tapError(() => stopProcess))))
    } satisfies EmbeddedKafka
  })
