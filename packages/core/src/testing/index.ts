/**
 * Test kit: the shared conformance suite, TestClock helpers, and the plumbing of the adapters' test servers.
 *
 * @since 0.1.0
 */
export * as Conformance from "./Conformance.ts"
export * as TestKit from "./TestKit.ts"
export * as PoisonCorpus from "./PoisonCorpus.ts"
export * as ServerProcess from "./ServerProcess.ts"
