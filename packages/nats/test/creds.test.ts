/**
 * `creds` authentication against a real nats-server in operator (decentralised JWT) mode: the operator,
 * account and user JWTs are minted here by hand with nkeys (no `nsc` needed). Proves that the contents of
 * a `.creds` file (user JWT + user nkey seed), passed as a `Redacted` string directly or via `NATS_CREDS`,
 * yield a usable connection, and that forged creds (a user signed by an account the server does not know,
 * or a valid user JWT with someone else's seed) fail with a `ConnectionError` that does not leak the seed.
 */
import { assert, describe, it } from "@effect/vitest"
import { nkeys } from "@nats-io/transport-node"
import { randomBytes } from "node:crypto"
import { ConfigProvider, Effect, Layer, Redacted } from "effect"
import { NatsConnection } from "../src/index.ts"
import { PrivateNatsServer } from "../src/testing/index.ts"

type KeyPair = ReturnType<typeof nkeys.createUser>

const encoder = new TextEncoder()
const decoder = new TextDecoder()

const base64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64url")

/** Encodes and signs a NATS JWT: base64url(header).base64url(claims).base64url(ed25519 signature). */
const jwt = (issuer: KeyPair, subject: string, name: string, nats: Record<string, unknown>): string => {
  const header = base64url(encoder.encode(JSON.stringify({ typ: "JWT", alg: "ed25519-nkey" })))
  const claims = base64url(encoder.encode(JSON.stringify({
    jti: randomBytes(16).toString("hex").toUpperCase(),
    iat: Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    sub: subject,
    name,
    nats
  })))
  const signature = base64url(issuer.sign(encoder.encode(`${header}.${claims}`)))
  return `${header}.${claims}.${signature}`
}

const operatorJwt = (operator: KeyPair): string =>
  jwt(operator, operator.getPublicKey(), "switchyard-test-operator", { type: "operator", version: 2 })

const accountJwt = (operator: KeyPair, account: KeyPair, name: string): string =>
  jwt(operator, account.getPublicKey(), name, {
    type: "account",
    version: 2,
    limits: {
      subs: -1,
      data: -1,
      payload: -1,
      imports: -1,
      exports: -1,
      wildcards: true,
      conn: -1,
      leaf: -1
    }
  })

const userJwt = (account: KeyPair, user: KeyPair): string =>
  jwt(account, user.getPublicKey(), "switchyard-test-user", {
    type: "user",
    version: 2,
    pub: {},
    sub: {},
    subs: -1,
    data: -1,
    payload: -1
  })

const seedOf = (kp: KeyPair): string => decoder.decode(kp.getSeed())

/** The `.creds` file format that nats.js `credsAuthenticator` parses. */
const credsFile = (userJwt: string, seed: string): string =>
  `-----BEGIN NATS USER JWT-----
${userJwt}
------END NATS USER JWT------

************************* IMPORTANT *************************
NKEY Seed printed below can be used to sign and prove identity.
NKEYs are sensitive and should be treated as secrets.

-----BEGIN USER NKEY SEED-----
${seed}
------END USER NKEY SEED------

*************************************************************
`

/**
 * A trust chain (operator → account → user) and the matching operator-mode server configuration. The
 * system account is required: PrivateServer runs with `-js`, and nats-server 2.9 in operator mode dies
 * with "Can't start JetStream: ... system account not setup" without one.
 */
const makeTrust = () => {
  const operator = nkeys.createOperator()
  const account = nkeys.createAccount()
  const systemAccount = nkeys.createAccount()
  const user = nkeys.createUser()
  const config = `operator: "${operatorJwt(operator)}"
system_account: "${systemAccount.getPublicKey()}"
resolver: MEMORY
resolver_preload: {
  ${account.getPublicKey()}: "${accountJwt(operator, account, "switchyard-test-account")}"
  ${systemAccount.getPublicKey()}: "${accountJwt(operator, systemAccount, "SYS")}"
}
`
  return { account, user, config, creds: credsFile(userJwt(account, user), seedOf(user)) }
}

describe("NATS creds (JWT) auth", () => {
  it.live("valid creds connect and carry messages; forged creds fail with a ConnectionError without the seed", () =>
    Effect.gen(function*() {
      const trust = makeTrust()
      const { url } = yield* PrivateNatsServer.handle({ config: trust.config }).start

      // 1. The real creds: connected, and core NATS pub/sub works for this user.
      const { nc } = yield* NatsConnection.make({
        servers: url,
        name: "creds-test",
        auth: { _tag: "Creds", creds: Redacted.make(trust.creds) },
        reconnect: { maxAttempts: 0 }
      })
      assert.isFalse(nc.isClosed())
      const subject = `creds.${Date.now().toString(36)}`
      const sub = nc.subscribe(subject, { max: 1 })
      yield* Effect.promise(() => nc.flush())
      nc.publish(subject, "hello over creds")
      const received = yield* Effect.promise(async () => {
        for await (const m of sub) return m.string()
        return undefined
      }).pipe(Effect.timeout("10 seconds"))
      assert.strictEqual(received, "hello over creds")
      assert.isAtLeast(yield* Effect.promise(() => nc.rtt()), 0)

      // 2a. A user signed by an account the server has never heard of (same operator, not preloaded).
      const rogueAccount = nkeys.createAccount()
      const rogueUser = nkeys.createUser()
      const rogueSeed = seedOf(rogueUser)
      const unknownAccount = yield* NatsConnection.make({
        servers: url,
        auth: { _tag: "Creds", creds: Redacted.make(credsFile(userJwt(rogueAccount, rogueUser), rogueSeed)) },
        reconnect: { maxAttempts: 0 },
        connectTimeout: "5 seconds"
      }).pipe(Effect.scoped, Effect.flip)
      assert.strictEqual(unknownAccount._tag, "ConnectionError")
      assert.notInclude(unknownAccount.message, rogueSeed)

      // 2b. The genuine user JWT, but signed (nonce) with another user's seed: identity not proven.
      const thiefSeed = seedOf(nkeys.createUser())
      const stolenJwt = yield* NatsConnection.make({
        servers: url,
        auth: {
          _tag: "Creds",
          creds: Redacted.make(credsFile(userJwt(trust.account, trust.user), thiefSeed))
        },
        reconnect: { maxAttempts: 0 },
        connectTimeout: "5 seconds"
      }).pipe(Effect.scoped, Effect.flip)
      assert.strictEqual(stolenJwt._tag, "ConnectionError")
      assert.notInclude(stolenJwt.message, thiefSeed)
      assert.notInclude(stolenJwt.message, seedOf(trust.user))
    }), 60_000)

  it.live("layerConfig reads the creds file contents from NATS_CREDS", () =>
    Effect.gen(function*() {
      const trust = makeTrust()
      const { url } = yield* PrivateNatsServer.handle({ config: trust.config }).start
      const provider = ConfigProvider.fromEnv({
        env: { NATS_SERVERS: url, NATS_CREDS: trust.creds, NATS_RECONNECT_MAX_ATTEMPTS: "0" }
      })
      const options = yield* NatsConnection.config().parse(provider)
      assert.strictEqual(options.auth?._tag, "Creds")
      assert.notInclude(JSON.stringify(options), seedOf(trust.user))
      const rtt = yield* Effect.gen(function*() {
        const { nc } = yield* NatsConnection.NatsConnection
        return yield* Effect.promise(() => nc.rtt())
      }).pipe(Effect.provide(NatsConnection.layerConfig().pipe(Layer.provide(ConfigProvider.layer(provider)))))
      assert.isAtLeast(rtt, 0)
    }), 60_000)
})
