/**
 * TLS against real nats-server processes of our own: certificates are made for the run with openssl (a
 * throwaway CA, a server certificate for 127.0.0.1, a client certificate), so nothing depends on the
 * machine's trust store. Proves server-authenticated TLS (CA as a file) and mutual TLS (CA, client
 * certificate and key as PEM contents), each with the broker carrying messages, and that an untrusted
 * server or a missing client certificate fails with a `ConnectionError`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Broker } from "@switchyard/core"
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ConfigProvider, Effect, Redacted } from "effect"
import { NatsBroker, NatsConnection } from "../src/index.ts"
import { message, subscribeOptions, take, text, unique } from "./helpers.ts"
import { PrivateNatsServer } from "../src/testing/index.ts"

interface Pki {
  readonly dir: string
  readonly caFile: string
  readonly serverCert: string
  readonly serverKey: string
  readonly clientCert: string
  readonly clientKey: string
}

const openssl = (dir: string, args: ReadonlyArray<string>) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" })

/** A CA, a server certificate for 127.0.0.1/localhost and a client certificate, in a temp dir. */
const makePki = Effect.acquireRelease(
  Effect.sync((): Pki => {
    const dir = mkdtempSync(join(tmpdir(), "switchyard-nats-tls-"))
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(dir, ["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=switchyard-test-ca"])
    writeFileSync(join(dir, "server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    writeFileSync(join(dir, "client.ext"), "extendedKeyUsage=clientAuth\n")
    for (const who of ["server", "client"]) {
      openssl(dir, ["req", ...ec, "-keyout", `${who}.key`, "-out", `${who}.csr`, "-subj", `/CN=switchyard-test-${who}`])
      openssl(dir, [
        "x509", "-req", "-in", `${who}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", `${who}.pem`, "-days", "2", "-extfile", `${who}.ext`
      ])
    }
    return {
      dir,
      caFile: join(dir, "ca.pem"),
      serverCert: join(dir, "server.pem"),
      serverKey: join(dir, "server.key"),
      clientCert: join(dir, "client.pem"),
      clientKey: join(dir, "client.key")
    }
  }),
  (pki) => Effect.sync(() => rmSync(pki.dir, { recursive: true, force: true }))
)

/** Publishes one message over the core NATS broker on this connection and reads it back. */
const roundTrip = (connection: NatsConnection.Options) =>
  Effect.gen(function*() {
    const broker = yield* Broker.Broker
    const subject = unique("sy.tls")
    const sub = yield* broker.subscribe(subject, subscribeOptions(unique("g")))
    yield* broker.publish(subject, [message("over tls")])
    const got = yield* take(sub, 1)
    return got.map(text)
  }).pipe(Effect.scoped, Effect.provide(NatsBroker.layerCore({ connection })))

const failFast = { maxAttempts: 0 }

describe("NATS over TLS", () => {
  it.live("server-authenticated TLS: trusted CA file carries messages, an untrusted server is refused", () =>
    Effect.gen(function*() {
      const pki = yield* makePki
      const server = PrivateNatsServer.handle({
        config: `tls { cert_file: "${pki.serverCert}", key_file: "${pki.serverKey}" }`
      })
      const { url } = yield* server.start
      assert.deepStrictEqual(
        yield* roundTrip({ servers: url, name: "switchyard-tls", tls: { caFile: pki.caFile } }),
        ["over tls"]
      )
      // The throwaway CA is in no trust store: without it the server's certificate is rejected.
      const untrusted = yield* NatsConnection.make({ servers: url, reconnect: failFast, tls: {} }).pipe(
        Effect.scoped,
        Effect.flip
      )
      assert.strictEqual(untrusted._tag, "ConnectionError")
    }), { timeout: 60_000 })

  it.live("mutual TLS: CA, client certificate and key as PEM contents; no client certificate is refused", () =>
    Effect.gen(function*() {
      const pki = yield* makePki
      const server = PrivateNatsServer.handle({
        config: `tls { cert_file: "${pki.serverCert}", key_file: "${pki.serverKey}", ca_file: "${pki.caFile}", verify: true }`
      })
      const { url } = yield* server.start
      const ca = readFileSync(pki.caFile, "utf8")
      const key = readFileSync(pki.clientKey, "utf8")
      assert.deepStrictEqual(
        yield* roundTrip({
          servers: url,
          name: "switchyard-mtls",
          tls: { ca, cert: readFileSync(pki.clientCert, "utf8"), key: Redacted.make(key) }
        }),
        ["over tls"]
      )
      const anonymous = yield* NatsConnection.make({ servers: url, reconnect: failFast, connectTimeout: "3 seconds", tls: { ca } }).pipe(
        Effect.scoped,
        Effect.flip
      )
      assert.strictEqual(anonymous._tag, "ConnectionError")
      assert.notInclude(anonymous.message, key)
    }), { timeout: 60_000 })

  it.live("layerConfig reads the TLS files from Config", () =>
    Effect.gen(function*() {
      const pki = yield* makePki
      const server = PrivateNatsServer.handle({
        config: `tls { cert_file: "${pki.serverCert}", key_file: "${pki.serverKey}" }`
      })
      const { url } = yield* server.start
      const provider = ConfigProvider.fromEnv({
        env: { NATS_SERVERS: url, NATS_TLS_CA_FILE: pki.caFile, NATS_RECONNECT_MAX_ATTEMPTS: "0" }
      })
      const options = yield* NatsConnection.config().parse(provider)
      assert.deepStrictEqual(typeof options.tls === "object" ? options.tls.caFile : undefined, pki.caFile)
      assert.deepStrictEqual(yield* roundTrip(options), ["over tls"])
    }), { timeout: 60_000 })
})

