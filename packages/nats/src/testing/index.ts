/**
 * Test support for NATS: a private nats-server per test (restartable, with auth or TLS configured), and
 * raw nats.js probes for messages Switchyard did not write.
 *
 * @since 0.3.0
 */
export * as NatsProbes from "./NatsProbes.ts"
export * as PrivateNatsServer from "./PrivateNatsServer.ts"
