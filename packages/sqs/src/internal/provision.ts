/**
 * Declare on first use: the `SqsTopology` service owns the kit's `Provisioner` (one `GetQueueUrl` /
 * `CreateQueue` per destination, however many fibers ask at once; failures not remembered). SQS speaks HTTP
 * and keeps no session, so there is no reconnect that would invalidate declarations: a queue found missing
 * later (`QueueDoesNotExist`, e.g. deleted, or a test server that lost it) is forgotten by the caller that
 * found it and declared again on the next use.
 */
export { redriveTargetOf } from "../SqsTopology.ts"
