/**
 * Which broker the CLI talks to: `--broker memory|amqp|nats|jetstream|kafka|sqs|redis` (a global flag, accepted before
 * or after the command), else the `SWITCHYARD_BROKER` environment variable, else `memory`. Each broker is
 * configured by the same environment variables as its layer (`AmqpBroker.layerConfig`,
 * `NatsBroker.layerConfig` / `layerCoreConfig`, `KafkaBroker.layerConfig`, `SqsBroker.layerConfig`,
 * `RedisBroker.layerConfig`; see docs/configuration.md).
 *
 * @since 0.1.0
 */
import { AmqpBroker } from "@switchyard/amqp"
import { type Broker, type Errors, MemoryBroker, Publisher, Subscriber } from "@switchyard/core"
import { KafkaBroker } from "@switchyard/kafka"
import { NatsBroker } from "@switchyard/nats"
import { RedisBroker } from "@switchyard/redis"
import { SqsBroker } from "@switchyard/sqs"
import { Config, Effect, Layer } from "effect"
import { Flag, GlobalFlag } from "effect/cli"
import * as Failure from "./Failure.ts"

/**
 * The brokers the CLI knows.
 *
 * @since 0.1.0
 */
export const names = ["memory", "amqp", "nats", "jetstream", "kafka", "sqs", "redis"] as const

/**
 * A broker name.
 *
 * @since 0.1.0
 */
export type Name = (typeof names)[number]

/**
 * The `--broker` global flag, with `SWITCHYARD_BROKER` as its fallback and `memory` as the default. Its value
 * is a service a command handler yields (`yield* BrokerSelection.BrokerFlag`).
 *
 * @since 0.1.0
 */
export const BrokerFlag = GlobalFlag.Setting("broker")({
  flag: Flag.Literals("broker", names).pipe(
    Flag.withDescription(
      "Broker: memory, amqp (RabbitMQ), nats (core NATS), jetstream (NATS JetStream), kafka, sqs (Amazon SQS) or redis (Redis Streams); default $SWITCHYARD_BROKER, else memory"
    ),
    Flag.withFallbackConfig(Config.Literals(names, "SWITCHYARD_BROKER").pipe(Config.withDefault("memory" as const)))
  )
})

/**
 * The byte-level `Broker` of a name, configured from the environment like the adapters' `layerConfig`.
 *
 * @example
 * ```ts
 * import { Broker } from "@switchyard/core"
 * import { Effect } from "effect"
 * import { BrokerSelection } from "@switchyard/cli"
 * const system = Broker.Broker.useSync((b) => b.system).pipe(Effect.provide(BrokerSelection.layer("amqp")))
 * ```
 * @since 0.1.0
 */
export const layer = (name: Name): Layer.Layer<Broker.Broker, Errors.ConnectionError | Config.ConfigError> => {
  switch (name) {
    case "memory":
      return MemoryBroker.layer()
    case "amqp":
      return AmqpBroker.layerConfig()
    case "nats":
      return NatsBroker.layerCoreConfig()
    case "jetstream":
      return NatsBroker.layerConfig()
    case "kafka":
      return KafkaBroker.layerConfig()
    case "sqs":
      return SqsBroker.layerConfig()
    case "redis":
      return RedisBroker.layerConfig()
  }
}

/**
 * Runs an effect on the selected broker (the `--broker` flag): provides `Broker`, `Publisher` and
 * `Subscriber`; the broker's connection closes when the effect ends. Every error becomes a `CliFailure`
 * (its one-line message and exit code, see `Failure.fromError`).
 *
 * @example
 * ```ts
 * import { Broker } from "@switchyard/core"
 * import { Console, Effect } from "effect"
 * import { BrokerSelection } from "@switchyard/cli"
 * const printSystem = BrokerSelection.withBroker(Broker.Broker.use((b) => Console.log(b.system)))
 * ```
 * @since 0.1.0
 */
export const withBroker = <A, E, R>(
  effect: Effect.Effect<A, E, R>
): Effect.Effect<
  A,
  Failure.CliFailure,
  Exclude<R, Broker.Broker | Publisher.Publisher | Subscriber.Subscriber> | GlobalFlag.Setting.Identifier<"broker">
> =>
  Effect.gen(function*() {
    const name = yield* BrokerFlag
    return yield* Effect.provide(effect, Layer.provideMerge(Layer.mergeAll(Publisher.layer, Subscriber.layer), layer(name)))
  }).pipe(Effect.mapError(Failure.fromError))
