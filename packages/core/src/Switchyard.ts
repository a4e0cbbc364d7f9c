/**
 * Wiring: the typed `Publisher` and `Subscriber` services over any `Broker`, and ready-made stacks.
 *
 * @since 0.1.0
 */
import { Layer } from "effect"
import type { Broker } from "./Broker.ts"
import * as MemoryBroker from "./MemoryBroker.ts"
import * as Publisher from "./Publisher.ts"
import * as Subscriber from "./Subscriber.ts"

/**
 * `Publisher` and `Subscriber` built on the provided `Broker`.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { MemoryBroker, Switchyard } from "@switchyard/core"
 * const live = Switchyard.layer.pipe(Layer.provideMerge(MemoryBroker.layer()))
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layer: Layer.Layer<Publisher.Publisher | Subscriber.Subscriber, never, Broker> = Layer.mergeAll(
  Publisher.layer,
  Subscriber.layer
)

/**
 * Everything on top of a broker layer: the broker's own services plus `Publisher` and `Subscriber`.
 *
 * @example
 * ```ts
 * import { MemoryBroker, Switchyard } from "@switchyard/core"
 * const live = Switchyard.on(MemoryBroker.layer({ partitions: 8 }))
 * ```
 * @category layers
 * @since 0.1.0
 */
export const on = <ROut, E, RIn>(
  brokerLayer: Layer.Layer<ROut | Broker, E, RIn>
): Layer.Layer<ROut | Broker | Publisher.Publisher | Subscriber.Subscriber, E, RIn> =>
  Layer.provideMerge(layer, brokerLayer)

/**
 * The in-memory stack: broker, inspection service, publisher and subscriber.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { MemoryBroker, Publisher, Switchyard, Topic } from "@switchyard/core"
 * const orders = Topic.make("orders", Schema.Struct({ id: Schema.String }))
 * const program = Effect.gen(function*() {
 *   yield* Publisher.publish(orders, { id: "o-1" })
 *   return yield* MemoryBroker.MemoryBroker.use((b) => b.publishedCount("orders")) // 1
 * }).pipe(Effect.provide(Switchyard.layerMemory({ partitions: 8 })))
 * ```
 * @category layers
 * @since 0.1.0
 */
export const layerMemory = (options?: MemoryBroker.Options) => on(MemoryBroker.layer(options))
