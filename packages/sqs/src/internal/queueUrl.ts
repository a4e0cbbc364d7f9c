/**
 * Destinations that are queue URLs (`https://sqs.eu-west-1.amazonaws.com/123456789012/orders`, ElasticMQ's
 * `http://127.0.0.1:9324/000000000000/orders`): an existing queue, maybe another account's or Terraform's,
 * used as it is: never created, never escaped, its spec never applied (a declared spec is checked against it).
 * A destination with a scheme (`…://`) is meant as a URL: one that is not a queue URL is refused, not taken
 * for a name. `<queue URL>.dlq` (the consumer's default dead-letter destination of a URL topic) is the queue's
 * own redrive target.
 */
import { Result } from "effect"
import { isFifo, isQueueName, queueNameOf } from "./names.ts"

/** A queue given by its URL. */
export interface QueueUrl {
  /** The URL as given (the SDK gets it verbatim). */
  readonly url: string
  /** The last path segment. */
  readonly queueName: string
  /** The queue name ends in `.fifo`. */
  readonly fifo: boolean
}

/** What a URL destination denotes: a queue, or the dead-letter queue of one (`<queue URL>.dlq`). */
export type UrlTarget =
  | { readonly _tag: "Queue"; readonly queue: QueueUrl }
  | { readonly _tag: "DeadLetterOf"; readonly source: QueueUrl }

const schemePrefix = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//

/** Whether a destination is meant as a URL: it starts with a scheme (`https://`, `http://`, `ftp://`, …). */
export const isUrl = (destination: string): boolean => schemePrefix.test(destination)


const deadLetterSuffix = ".dlq"

/** Why `text` is not a queue URL, or the queue. */
const queueOf = (text: string): Result.Result<QueueUrl, string> => {
  const url = URL.parse(text)
  if (url === null) return Result.fail(`not a URL: ${text}`)
  if (url.protocol !== "https:" && url.protocol !== "http:") return Result.fail(`not an http(s) URL: ${text}`)
  // WHATWG parsing takes `https:///123/q` for host `123`: the host must follow the `//` in the text itself
  if (url.hostname === "" || !/^https?:\/\/[^/]/i.test(text)) return Result.fail(`the queue URL has no host: ${text}`)
  if (url.username !== "" || url.password !== "") return Result.fail(`a queue URL carries no credentials: ${text}`)
  if (url.search !== "" || url.hash !== "" || text.includes("?") || text.includes("#")) {
    return Result.fail(`a queue URL has no query or fragment: ${text}`)
  }
  const segments = url.pathname.split("/").slice(1)
  const queueName = segments.at(-1) ?? ""
  if (segments.length === 0 || queueName === "") {
    return Result.fail(`the queue URL has no queue name (its last path segment): ${text}`)
  }
  if (!isQueueName(queueName)) {
    return Result.fail(`the last path segment of the queue URL, "${queueName}", is not an SQS queue name (1-80 of A-Z a-z 0-9 _ -, optional .fifo): ${text}`)
  }
  // the URL is used verbatim, so it must end with the name we read (no encoded or normalised path)
  if (!text.endsWith(`/${queueName}`)) return Result.fail(`the queue URL does not end with its queue name: ${text}`)
  return Result.succeed({ url: text, queueName, fifo: isFifo(queueName) })
}

/**
 * What a URL destination (see {@link isUrl}) denotes, or why it is malformed: a scheme other than http(s), no
 * host, no queue name (last path segment), a last segment SQS would refuse, a query or fragment.
 */
export const parse = (destination: string): Result.Result<UrlTarget, string> => {
  const queue = queueOf(destination)
  if (Result.isSuccess(queue)) return Result.succeed({ _tag: "Queue", queue: queue.success })
  if (destination.endsWith(deadLetterSuffix)) {
    const source = queueOf(destination.slice(0, -deadLetterSuffix.length))
    if (Result.isSuccess(source)) return Result.succeed({ _tag: "DeadLetterOf", source: source.success })
  }
  return Result.fail(queue.failure)
}

/** AWS's SQS hosts: `sqs.<region>.amazonaws.com[.cn]`, VPC endpoints `….sqs.<region>.vpce.amazonaws.com`, legacy `<region>.queue.amazonaws.com`. */
const awsHosts = [
  /^sqs\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$/,
  /\.sqs\.([a-z0-9-]+)\.vpce\.amazonaws\.com(?:\.cn)?$/,
  /^([a-z0-9-]+)\.queue\.amazonaws\.com(?:\.cn)?$/
]

/** The AWS region a queue URL's host names, if it is one of AWS's SQS hosts. */
export const awsRegionOf = (queue: QueueUrl): string | undefined => {
  const host = URL.parse(queue.url)?.hostname.toLowerCase() ?? ""
  for (const pattern of awsHosts) {
    const region = pattern.exec(host)?.[1]
    if (region !== undefined) return region
  }
  return undefined
}

/**
 * Why the connection cannot reach a queue URL: the SDK signs every request for the connection's region, and
 * AWS refuses a signature for another region than the queue's (with an authentication error that does not say
 * so). Only when both are known: the connection's `region` set, and the URL one of AWS's hosts.
 */
export const regionProblem = (queue: QueueUrl, connectionRegion: string | undefined): string | undefined => {
  const region = awsRegionOf(queue)
  return region === undefined || connectionRegion === undefined || region === connectionRegion
    ? undefined
    : `the queue ${queue.url} is in ${region}, and this connection signs its requests for ${connectionRegion}: use a connection (SqsBroker.layer) with region "${region}"`
}

/** The queue name in an SQS queue ARN (`arn:aws:sqs:<region>:<account>:<name>`), if it is one. */
export const queueNameOfArn = (arn: string): string | undefined => {
  const parts = arn.split(":")
  const name = parts[5]
  return parts.length === 6 && parts[0] === "arn" && parts[2] === "sqs" && name !== undefined && isQueueName(name)
    ? name
    : undefined
}

/**
 * The URL of another queue of the same account and endpoint: SQS wants a redrive target in the source's
 * account and region, so its URL is the source's with the last segment replaced.
 */
export const siblingUrl = (source: QueueUrl, queueName: string): QueueUrl => ({
  url: source.url.slice(0, source.url.length - source.queueName.length) + queueName,
  queueName,
  fifo: isFifo(queueName)
})

/**
 * The SQS queue name a destination stands for: a name's mapping, a queue URL's last segment; any other
 * destination with a scheme (`<queue URL>.dlq`, a malformed URL) as given.
 */
export const queueNameOfDestination = (destination: string): string => {
  if (!isUrl(destination)) return queueNameOf(destination)
  const target = queueOf(destination)
  return Result.isSuccess(target) ? target.success.queueName : destination
}

/** A queue attribute a declared spec asks for and the queue has otherwise. */
export interface Mismatch {
  readonly attribute: string
  readonly declared: string
  readonly actual: string | undefined
}

/** The attributes of `wanted` that `actual` (what `GetQueueAttributes` answered) does not have. */
export const mismatches = (
  wanted: Readonly<Record<string, string>>,
  actual: Readonly<Record<string, string>>
): ReadonlyArray<Mismatch> =>
  Object.entries(wanted).flatMap(([attribute, declared]) =>
    actual[attribute] === declared ? [] : [{ attribute, declared, actual: actual[attribute] }]
  )

/** The mismatches as one sentence. */
export const describeMismatches = (found: ReadonlyArray<Mismatch>): string =>
  found.map((m) => `${m.attribute} is ${m.actual === undefined ? "not set" : `"${m.actual}"`}, declared "${m.declared}"`).join("; ")
