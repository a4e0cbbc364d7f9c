/**
 * The consumer's subscription: opened in a scope of its own, closed only after the last settlement (during
 * a drain the channel/consumer that delivered a message is still there to ack it), and re-opened per the
 * `restart` schedule when it fails with a retryable `SubscribeError`.
 */
import { Cause, Deferred, Effect, Exit, Stream } from "effect"
import * as Scope from "effect/Scope"
import type { BrokerShape, SubscribeOptions } from "../../Broker.ts"
import type { DecodeError, SubscribeError } from "../../Errors.ts"
import type { Delivery } from "../../Subscriber.ts"
import * as Subscriber from "../../Subscriber.ts"
import type { Topic } from "../../Topic.ts"
import type { Drain } from "./drain.ts"
import type { Config } from "./options.ts"

/** Only a subscription failure that may pass (connection lost, timeout) is worth a restart. */
export const restartable = (error: SubscribeError | DecodeError): boolean => error._tag === "SubscribeError" && error.isRetryable

/** What one subscription run needs. */
export interface Context<A, R> {
  readonly broker: Pick<BrokerShape, "subscribe">
  readonly topic: Topic<A>
  readonly drain: Drain<A>
  /** Processes the subscription's deliveries (the lanes over the steps). */
  readonly process: (deliveries: Stream.Stream<Delivery<A>, SubscribeError>) => Effect.Effect<void, SubscribeError | DecodeError, R>
}

/**
 * Subscribes and processes until the subscription ends, fails, or shutdown stops intake. On shutdown the
 * broker takes back what this member buffered but never took, then the consumer gives back what it took
 * but did not start: other members get both now, while in-flight handlers drain.
 */
const subscribeAndProcess = <A, E, R>(config: Config<E>, context: Context<A, R>) => {
  const { broker, drain, topic } = context
  const options: SubscribeOptions = Subscriber.resolveOptions(config.subscription)
  const stopped = Deferred.await(drain.stop)
  return Effect.acquireUseRelease(
    Scope.make(),
    Effect.fnUntraced(function*(scope) {
      const subscription = yield* Scope.provide(broker.subscribe(topic.name, options), scope)
      yield* Effect.logDebug(`consumer "${options.group}" subscribed to ${topic.name}`)
      yield* Effect.forkIn(Effect.andThen(stopped, Effect.andThen(subscription.stopIntake ?? Effect.void, drain.releasePending)), scope)
      yield* context.process(subscription.deliveries.pipe(
        Stream.map((raw) => drain.track(Subscriber.decode(topic, raw))),
        Stream.interruptWhen(stopped)
      ))
    }),
    // Whatever no lane reached is given back before the subscription closes; after a subscription failure the
    // broker redelivers it anyway (its channel is gone): forget it.
    (scope, exit) =>
      Effect.andThen(
        Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause) ? drain.forget : drain.releasePending,
        Scope.close(scope, exit)
      )
  )
}

/** The subscription run, restarted per `config.restart` after a retryable failure. */
export const supervised = <A, E, R>(config: Config<E>, context: Context<A, R>) => {
  const once = subscribeAndProcess(config, context)
  const restart = config.restart
  if (restart === undefined) return once
  const name = `consumer "${config.subscription.group}" on ${context.topic.name}`
  return once.pipe(
    Effect.tapError((error) =>
      restartable(error) ? Effect.logWarning(`${name}: subscription failed, restarting`, error) : Effect.void
    ),
    Effect.retry({ schedule: restart, while: restartable })
  )
}
