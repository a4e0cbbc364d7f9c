// Deletes the queues and exchanges that earlier test runs left on the shared RabbitMQ node (every test
// names its destinations with one of the prefixes below). Without this they pile up run after run: a node
// holding over a thousand durable queues needs more file handles than it has to recover them, and the
// restart tests' `start_app` then never finishes. Best effort: a failure is reported, never fatal.
import { execFileSync } from "node:child_process"
import * as amqp from "amqplib"

const prefixes = ["sy-test.", "sy-cli.", "sy-cli-", "conf.", "pkgtest-", "bench.", "sy."]
const url = process.env["AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672"

const list = (what) =>
  execFileSync("rabbitmqctl", ["-q", "--no-table-headers", what, "name"], { encoding: "utf8", timeout: 60_000 })
    .split("\n").map((line) => line.trim()).filter((name) => prefixes.some((prefix) => name.startsWith(prefix)))

try {
  const queues = list("list_queues")
  const exchanges = list("list_exchanges")
  if (queues.length + exchanges.length > 0) {
    const connection = await amqp.connect(url)
    const channel = await connection.createChannel()
    for (const queue of queues) await channel.deleteQueue(queue)
    for (const exchange of exchanges) await channel.deleteExchange(exchange)
    await connection.close()
    console.error(`[preflight] removed ${queues.length} queues and ${exchanges.length} exchanges left by earlier test runs`)
  }
} catch (error) {
  console.error(`[preflight] could not clean RabbitMQ of earlier test runs' leftovers: ${String(error)}`)
}
