/**
 * Topics created on first use, through the adapter kit's `Provisioner`: once per topic, concurrency-safe,
 * failures not remembered; declared topology (`topics`) wins over the defaults. `invalidateAll` runs after
 * the producer was replaced (a reconnect): a topic deleted meanwhile is created again on its next use.
 */
import { Effect, Schedule } from "effect"
import { Provisioner } from "@switchyard/core/adapter"
import type { Resolved, TopicSpec } from "../KafkaConnection.ts"

/** A topic to create: its name and spec. */
export interface CreateTopic extends TopicSpec {
  readonly topic: string
}

/** The spec a topic gets when it is created on first use. */
export const specOf = (resolved: Resolved, topic: string): CreateTopic => ({
  ...(resolved.options.topics?.[topic] ?? {}),
  topic
})

/** What provisioning needs from the topology: create (idempotent) and describe (waits for the leaders). */
export interface ProvisionDeps<E> {
  readonly resolved: Resolved
  readonly createTopics: (topics: ReadonlyArray<CreateTopic>) => Effect.Effect<void, E>
  readonly describe: (topic: string) => Effect.Effect<unknown, E>
}

/** The provisioner of topics: `ensure(topic)` creates it the first time, then answers from memory. */
export const make = <E>(deps: ProvisionDeps<E>): Effect.Effect<Provisioner.Provisioner<string, E>> =>
  Provisioner.make<string, E>({
    declare: (topic) =>
      deps.createTopics([specOf(deps.resolved, topic)]).pipe(
        Effect.andThen(deps.describe(topic)),
        // a topic just created may not be in every broker's metadata yet ("does not host this
        // topic-partition"), for longer on a loaded cluster: try for about 5 seconds
        Effect.retry({ times: 20, schedule: Schedule.spaced("250 millis") }),
        Effect.asVoid
      )
  })
