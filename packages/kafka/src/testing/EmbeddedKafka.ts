/**
 * A real, single-node Apache Kafka broker (KRaft: broker + controller in one JVM) for tests, started from the
 * jars on Maven Central. No Docker: the jars are resolved once with Maven into
 * `~/.cache/switchyard/kafka-<version>/libs`, a fresh log dir is formatted with a random cluster id and the
 * broker listens on free `127.0.0.1` ports.
 *
 * @since 0.1.0
 */
import { type ChildProcess, type ChildProcessByStdio, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import type { Readable } from "node:stream"
import { Duration, Effect, Ref, Schedule, Schema, Scope } from "effect"
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

/** Runs a command to completion; fails with its output when it exits non-zero. */
const run = (command: string, args: ReadonlyArray<string>, cwd: string) =>
  Effect.callback<string, EmbeddedKafkaError>((resume) => {
    const child = spawn(command, args, { cwd, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout.on("data", (d: Buffer) => (output += d.toString()))
    child.stderr.on("data", (d: Buffer) => (output += d.toString()))
    child.on("error", (e) => resume(Effect.fail(fail(`cannot run ${command}`, e))))
    child.on("close", (code) =>
      resume(
        code === 0
          ? Effect.succeed(output)
          : Effect.fail(fail(`${command} ${args.join(" ")} exited with ${code}: ${output.slice(-4000)}`))
      )
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

const pom = (version: string) => `<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.switchyard</groupId>
  <artifactId>kafka-test-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>${version}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>${log4jVersion}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>${log4jVersion}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>${log4jVersion}</version></dependency>
  </dependencies>
</project>
`

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
export const resolveJars = (version: string = defaultVersion, cacheDir?: string) =>
  Effect.gen(function*() {
    const dir = cacheDir ?? Path.join(Os.homedir(), ".cache", "switchyard", `kafka-${version}`)
    const libs = Path.join(dir, "libs")
    const marker = Path.join(dir, ".complete")
    if (!Fs.existsSync(marker)) {
      yield* Effect.logInfo(`resolving Apache Kafka ${version} jars from Maven Central into ${libs}`)
      yield* Effect.try({
        try: () => {
          Fs.mkdirSync(dir, { recursive: true })
          Fs.rmSync(libs, { recursive: true, force: true })
          Fs.writeFileSync(Path.join(dir, "pom.xml"), pom(version))
        },
        catch: (e) => fail("cannot write the cache dir", e)
      })
      yield* run(
        "mvn",
        ["-B", "-q", "dependency:copy-dependencies", "-DincludeScope=runtime", `-DoutputDirectory=${libs}`],
        dir
      )
      yield* Effect.try({ try: () => Fs.writeFileSync(marker, new Date().toISOString()), catch: (e) => fail("marker", e) })
    }
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
export const freePort: Effect.Effect<number, EmbeddedKafkaError> = Effect.callback((resume) => {
  const server = Net.createServer()
  server.on("error", (e) => resume(Effect.fail(fail("cannot find a free port", e))))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(port > 0 ? Effect.succeed(port) : Effect.fail(fail("no port"))))
  })
})

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

/** One admin round trip, retried until the broker answers. */
const adminRoundTrip = (bootstrap: string, timeout: Duration.Input) =>
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
  ).pipe(
    Effect.retry(Schedule.spaced("250 millis")),
    Effect.timeoutOrElse({
      duration: timeout,
      orElse: () => Effect.fail(fail(`no admin round trip within ${Duration.format(Duration.fromInputUnsafe(timeout))}`))
    })
  )

// like Kafka's Uuid.randomUuid: never starting with "-", which the storage tool's argument parser reads as a flag
const newClusterId = (): string => {
  const id = randomBytes(16).toString("base64url")
  return id.startsWith("-") ? newClusterId() : id
}

/** A started broker process and the tail of what it printed (for the error when it does not start). */
interface Launched {
  readonly proc: ChildProcessByStdio<null, Readable, Readable>
  readonly tail: { text: string }
}

const spawnJava = (args: ReadonlyArray<string>, cwd: string, verbose: boolean): Launched => {
  const proc = spawn("java", args, { cwd, stdio: ["ignore", "pipe", "pipe"] })
  const tail = { text: "" }
  const onData = (d: Buffer) => {
    const text = d.toString()
    if (verbose) process.stderr.write(text)
    tail.text = (tail.text + text).slice(-20_000)
  }
  proc.stdout.on("data", onData)
  proc.stderr.on("data", onData)
  return { proc, tail }
}

/** Resolves once the broker printed "Kafka Server started"; fails if it exits (or cannot spawn) before. */
const untilStarted = ({ proc, tail }: Launched) =>
  Effect.callback<void, EmbeddedKafkaError>((resume) => {
    const onData = () => {
      if (tail.text.includes("Kafka Server started")) resume(Effect.void)
    }
    const onError = (e: Error) => resume(Effect.fail(fail("cannot spawn java", e)))
    const onExit = (code: number | null, signal: NodeJS.Signals | null) =>
      resume(Effect.fail(fail(`broker exited (code ${code}, signal ${signal}) before it was ready:\n${tail.text.slice(-6000)}`)))
    // (listeners added after spawnJava's, so the tail already holds the chunk being checked)
    proc.stdout.on("data", onData)
    proc.stderr.on("data", onData)
    proc.on("error", onError)
    proc.on("exit", onExit)
    onData()
    return Effect.sync(() => {
      proc.stdout.off("data", onData)
      proc.stderr.off("data", onData)
      proc.off("error", onError)
      proc.off("exit", onExit)
    })
  })

/** SIGTERM, then SIGKILL after 10 s; nothing when it has exited already. */
const stopChild = (proc: ChildProcess | undefined): Effect.Effect<void> => {
  if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return Effect.void
  const signal = (name: NodeJS.Signals) =>
    Effect.callback<void>((resume) => {
      proc.once("exit", () => resume(Effect.void))
      proc.kill(name)
    })
  return signal("SIGTERM").pipe(Effect.timeoutOrElse({ duration: "10 seconds", orElse: () => signal("SIGKILL") }))
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
    const work = yield* Effect.acquireRelease(
      Effect.try({
        try: () => Fs.mkdtempSync(Path.join(Os.tmpdir(), "switchyard-kafka-")),
        catch: (e) => fail("cannot create a temp dir", e)
      }),
      (path) => Effect.sync(() => Fs.rmSync(path, { recursive: true, force: true }))
    )
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
    yield* run(
      "java",
      [...jvm, "kafka.tools.StorageTool", "format", "-t", clusterId, "-c", propsFile, "--ignore-formatted", ...scram],
      work
    )

    const current = yield* Ref.make<ChildProcess | undefined>(undefined)
    const spawnBroker = Effect.sync(() => spawnJava([...jvm, "kafka.Kafka", propsFile], work, options.verbose === true)).pipe(
      Effect.tap((launched) => Ref.set(current, launched.proc))
    )
    const launch = spawnBroker.pipe(
      Effect.flatMap((launched) =>
        untilStarted(launched).pipe(
          Effect.timeoutOrElse({
            duration: timeout,
            orElse: () => Effect.fail(fail(`broker not ready within the timeout:\n${launched.tail.text.slice(-6000)}`))
          })
        )
      ),
      Effect.andThen(adminRoundTrip(`127.0.0.1:${port}`, timeout))
    )
    const stopProcess = Effect.flatMap(Ref.getAndSet(current, undefined), stopChild)

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
