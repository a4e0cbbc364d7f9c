/**
 * Deliveries a consumer has taken from its subscription but not started yet. When shutdown begins they are
 * all given back to the broker at once, while in-flight handlers drain; a lane that reaches one afterwards
 * skips it. Touched only in synchronous steps of the consumer's own fibers (JavaScript runs one at a time),
 * so each operation is atomic.
 */
export class Pending<D> {
  readonly #deliveries = new Set<D>()

  /** Records a delivery as taken; returns it. */
  add(delivery: D): D {
    this.#deliveries.add(delivery)
    return delivery
  }

  /** Claims a delivery for a handler run: `false` if it was given back already. */
  start(delivery: D): boolean {
    return this.#deliveries.delete(delivery)
  }

  /** Claims every delivery not started yet (to give them back). */
  takeAll(): ReadonlyArray<D> {
    const all = [...this.#deliveries]
    this.#deliveries.clear()
    return all
  }
}
