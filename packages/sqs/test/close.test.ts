/**
 * Closing a subscription stops every one of its receivers, even with long polls of the default 10 s in
 * flight: a message sent afterwards stays in the queue for whoever comes next. (Receivers interrupted one by
 * one used to let the close's time bound run out while the first finished its poll; the others polled on,
 * taking messages into a closed subscription where they stayed invisible.)
 */
import { ReceiveMessageCommand, SendMessageCommand } from "@aws-sdk/client-sqs"
import { assert, layer } from "@effect/vitest"
import { Broker } from "@switchyard/core"
import { Effect } from "effect"
import { SqsTopology } from "../src/index.ts"
import { brokerOn, TestServer, unique } from "./helpers.ts"

layer(brokerOn({ waitTime: "10 seconds" }), { excludeTestServices: true, timeout: "2 minutes" })("sqs: closing", (it) => {
  it.effect("a closed subscription with 4 receivers in long polls takes nothing sent after its close", () =>
    Effect.gen(function*() {
      const broker = yield* Broker.Broker
      const topology = yield* SqsTopology.SqsTopology
      const { raw } = yield* TestServer
      const destination = unique("closed")
      const { url } = yield* topology.queue(destination)
      // prefetch 40: four receivers, each in a 10 s long poll on the empty queue when the scope closes
      yield* Effect.scoped(Effect.andThen(broker.subscribe(destination, { group: "g", prefetch: 40, startFrom: "earliest" }), Effect.sleep("500 millis")))
      yield* Effect.promise(() => raw.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "after the close" })))
      // longer than a long poll: a receiver still polling would have taken the message by now
      yield* Effect.sleep("12 seconds")
      const left = yield* Effect.promise(() =>
        raw.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }))
      )
      assert.deepStrictEqual((left.Messages ?? []).map((m) => m.Body), ["after the close"])
    }), 60_000)
})
