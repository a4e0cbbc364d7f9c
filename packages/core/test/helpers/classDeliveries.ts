/**
 * The in-memory broker with its deliveries re-shaped as class instances whose `ack` is a getter and whose
 * `nack` is a prototype method using `this`, as the RabbitMQ and Kafka adapters build them. A caller that
 * copies `nack` off a delivery unbound crashes on these, as it did on those brokers.
 */
import type { Broker, Errors } from "@switchyard/core"
import { MemoryBroker } from "@switchyard/core"
import { Effect, Stream } from "effect"

class ClassDelivery implements Broker.RawDelivery {
  readonly #raw: Broker.RawDelivery
  constructor(raw: Broker.RawDelivery) {
    this.#raw = raw
  }
  get envelope() {
    return this.#raw.envelope
  }
  get deliveryLimit() {
    return this.#raw.deliveryLimit
  }
  get ack(): Effect.Effect<void, Errors.AckError> {
    return this.#raw.ack
  }
  nack(options?: Broker.NackOptions): Effect.Effect<void, Errors.AckError> {
    return this.#raw.nack(options)
  }
}

/** Wraps a broker so that every delivery is a {@link ClassDelivery}. */
export const withClassDeliveries = (broker: Broker.BrokerShape): Broker.BrokerShape => ({
  ...broker,
  subscribe: (destination, options) =>
    Effect.map(broker.subscribe(destination, options), (subscription) => ({
      ...subscription,
      deliveries: Stream.map(subscription.deliveries, (raw) => new ClassDelivery(raw))
    }))
})

/** The in-memory broker (and its inspection service) delivering {@link ClassDelivery} instances. */
export const layer = (options?: MemoryBroker.Options) => MemoryBroker.layerWrapped(withClassDeliveries, options)
