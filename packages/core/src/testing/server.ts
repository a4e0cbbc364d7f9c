/**
 * The plumbing of the adapters' test servers (free ports, temp dirs, Maven classpaths, child processes), on
 * its own entry point: it loads neither vitest nor the conformance suite, so `@switchyard/<broker>/testing`
 * works in any test runner.
 *
 * @since 0.4.0
 */
export * as ServerProcess from "./ServerProcess.ts"
