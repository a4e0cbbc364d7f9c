/**
 * Test kit: the shared conformance suite and TestClock helpers.
 *
 * @since 0.1.0
 */
export * as Conformance from "./Conformance.ts"
export * as TestKit from "./TestKit.ts"
export * as PoisonCorpus from "./PoisonCorpus.ts"
