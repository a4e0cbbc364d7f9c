/**
 * The packages as a user gets them from npm. Builds every package, packs it with pnpm (publishConfig
 * applied, `workspace:` ranges rewritten), installs the tarballs with plain npm into fresh projects outside
 * the repository that take `effect` from the registry, then:
 * - checks what is in each tarball (exports, files, dependency ranges);
 * - type-checks a program and every entry point, strict, skipLibCheck off, under `moduleResolution`
 *   NodeNext (tsc 7 and tsc 5.9) and Bundler (tsc 7);
 * - runs the compiled program with plain `node` (no tsx, no loader) on the in-memory broker, RabbitMQ and
 *   NATS, and the README's "Install in your project" example, on every supported Node major;
 * - runs the packed conformance suite (`@switchyard/core/testing`) with vitest from the registry;
 * - repeats the type-check and the runs against the lowest `effect` the peer range claims.
 *
 * Node binaries come from the npm registry's `node` package (scripts/provision-node.sh, cached in .tools/);
 * npm's cache is .tools/npm-cache. `SWITCHYARD_KEEP_PACKAGING=1` keeps the temporary projects.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const root = path.resolve(import.meta.dirname, "..")
const fixtures = path.join(import.meta.dirname, "packaging")
const tools = path.join(root, ".tools")
const npmCache = path.join(tools, "npm-cache")
const pnpm = path.join(tools, "pnpm", "node_modules", ".bin", "pnpm")
const tsc7 = path.join(root, "node_modules", ".bin", "tsc")
const tsc5 = path.join(root, "scripts", "api-docs", "node_modules", ".bin", "tsc")

/** The Node majors the README says are supported; each is run. */
const nodeMajors = ["22", "24"] as const
/** The lowest effect the peer range `^4.0.0` claims; the newest 4.x comes from the registry. */
const lowestEffect = "4.0.0"

/** The packages and their entry points: what the workspace's `exports` offer, the packed ones must too. */
const packages = fs.readdirSync(path.join(root, "packages")).filter((dir) =>
  fs.existsSync(path.join(root, "packages", dir, "package.json"))
).sort((a, b) => (a === "core" ? -1 : b === "core" ? 1 : a.localeCompare(b))).map((dir) => {
  const manifest = JSON.parse(fs.readFileSync(path.join(root, "packages", dir, "package.json"), "utf8"))
  const entries = Object.keys(manifest.exports).filter((entry) => entry !== "./package.json")
  return { dir, name: String(manifest.name), entries }
})

interface Result {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly output: string
}

/**
 * The environment of every child: this process's (proxy and CA settings included) without what vitest, tsx
 * or a pnpm script put there, and the chosen Node first on PATH (npm and vitest bins use `env node`).
 */
const childEnv = (nodeBin?: string): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(VITEST|TSX_|NODE_OPTIONS$|NODE_ENV$|npm_lifecycle_|npm_package_|npm_config_)/.test(name)) continue
    env[name] = value
  }
  env.PATH = [nodeBin === undefined ? undefined : path.dirname(nodeBin), path.dirname(process.execPath), process.env.PATH]
    .filter((p) => p !== undefined).join(path.delimiter)
  env.CI = "true"
  env.npm_config_cache = npmCache
  env.npm_config_update_notifier = "false"
  return env
}

const exec = (
  command: string,
  args: ReadonlyArray<string>,
  options: {
    readonly cwd: string
    readonly env?: NodeJS.ProcessEnv
    readonly timeoutMs?: number
    readonly onOutput?: (all: string, kill: (signal: NodeJS.Signals) => void) => void
  }
): Promise<Result> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? childEnv(), stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    const kill = (signal: NodeJS.Signals) => child.kill(signal)
    const timer = setTimeout(() => {
      output += `\n[packaging test] timed out after ${options.timeoutMs ?? 300_000} ms`
      child.kill("SIGKILL")
    }, options.timeoutMs ?? 300_000)
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      options.onOutput?.(output, kill)
    }
    child.stdout.on("data", onData)
    child.stderr.on("data", onData)
    child.on("error", (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, output })
    })
  })

/** Runs a command that must succeed; otherwise fails with its whole output. */
const ok = async (command: string, args: ReadonlyArray<string>, options: Parameters<typeof exec>[2]) => {
  const result = await exec(command, args, options)
  if (result.code !== 0) {
    throw new Error(
      `\`${path.basename(command)} ${args.join(" ")}\` in ${options.cwd} exited with ${result.code ?? result.signal}:\n${result.output}`
    )
  }
  return result.output
}

/**
 * tsc with skipLibCheck off: every error in the program, our declarations (node_modules/@switchyard) and
 * the fixtures fails the check. Errors inside other libraries' declarations (nats.js's under
 * exactOptionalPropertyTypes) are theirs; they are printed, not counted.
 */
const typecheck = async (bin: string, args: ReadonlyArray<string>, cwd: string) => {
  const result = await exec(bin, args, { cwd })
  if (result.code === 0) return
  const errors = result.output.split("\n").filter((l) => /^\S+\(\d+,\d+\): error TS/.test(l))
  const ours = errors.filter((l) => !l.startsWith("node_modules/") || l.startsWith("node_modules/@switchyard/"))
  if (errors.length === 0 || ours.length > 0) {
    throw new Error(`\`${path.basename(bin)} ${args.join(" ")}\` in ${cwd} failed:\n${result.output}`)
  }
  console.log(`[packaging] ${path.relative(root, bin)} ${args.join(" ")} in ${path.basename(cwd)}: ${errors.length} errors in other libraries' declarations, ignored:\n${errors.join("\n")}`)
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), "switchyard-packaging-"))
const tarballDir = path.join(work, "tarballs")
const tarballs = new Map<string, string>()
const nodeBins = new Map<string, string>()
const timings: Array<string> = []

const timed = async <A>(label: string, f: () => Promise<A>): Promise<A> => {
  const start = Date.now()
  try {
    return await f()
  } finally {
    timings.push(`${label} ${((Date.now() - start) / 1000).toFixed(1)}s`)
  }
}

const tsconfig = (moduleResolution: "NodeNext" | "Bundler", files: ReadonlyArray<string>) => ({
  compilerOptions: {
    target: "ES2023",
    module: moduleResolution === "NodeNext" ? "NodeNext" : "ESNext",
    moduleResolution,
    lib: ["ES2023", "DOM"],
    types: ["node"],
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    skipLibCheck: false,
    verbatimModuleSyntax: true,
    ...(moduleResolution === "NodeNext" ? { outDir: "out", rootDir: "." } : { noEmit: true })
  },
  files
})

/** A fresh npm project outside the repository with the tarballs and the registry's effect. */
const makeProject = async (
  name: string,
  effectRange: string,
  extra: Record<string, string>,
  files: ReadonlyArray<string>
) => {
  const dir = path.join(work, name)
  fs.mkdirSync(dir, { recursive: true })
  const dependencies: Record<string, string> = { effect: effectRange, ...extra }
  for (const pkg of packages) dependencies[pkg.name] = `file:${tarballs.get(pkg.name)}`
  fs.writeFileSync(
    path.join(dir, "package.json"),
    JSON.stringify({ name: `switchyard-packaging-${name}`, private: true, type: "module", dependencies }, null, 2)
  )
  for (const file of ["main.ts", "surface.ts"]) fs.copyFileSync(path.join(fixtures, file), path.join(dir, file))
  fs.copyFileSync(path.join(fixtures, "conformance.fixture.ts"), path.join(dir, "conformance.test.ts"))
  fs.writeFileSync(path.join(dir, "tsconfig.json"), JSON.stringify(tsconfig("NodeNext", files), null, 2))
  fs.writeFileSync(path.join(dir, "tsconfig.bundler.json"), JSON.stringify(tsconfig("Bundler", files), null, 2))
  await timed(`npm install (${name})`, () =>
    ok("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefer-offline"], {
      cwd: dir,
      env: childEnv(nodeBins.get("24")),
      timeoutMs: 240_000
    }))
  return dir
}

const installed = (dir: string, name: string): string =>
  JSON.parse(fs.readFileSync(path.join(dir, "node_modules", name, "package.json"), "utf8")).version

let latest = ""
let lowest = ""

/** Type-checks started together once the projects are installed (tsc is the slow part); tests await theirs. */
const checks = new Map<string, Promise<void>>()
const startCheck = (label: string, f: () => Promise<void>) => {
  const check = timed(label, f)
  check.catch(() => undefined) // reported by the test that awaits it
  checks.set(label, check)
}
const check = (label: string): Promise<void> => checks.get(label) ?? Promise.reject(new Error(`no check ${label}`))

beforeAll(async () => {
  for (const major of nodeMajors) {
    const bin = (await ok("bash", [path.join(root, "scripts", "provision-node.sh"), major], { cwd: root })).trim().split("\n").at(-1)
    expect(bin, `provisioning Node ${major}`).toBeDefined()
    nodeBins.set(major, bin ?? "")
  }
  // A fresh clone has no dist/: build, then pack with pnpm (which applies publishConfig).
  await timed("pnpm build", () => ok(pnpm, ["run", "build"], { cwd: root, env: { ...process.env }, timeoutMs: 300_000 }))
  fs.mkdirSync(tarballDir, { recursive: true })
  await timed("pnpm pack", async () => {
    for (const pkg of packages) {
      const out = await ok(pnpm, ["pack", "--pack-destination", tarballDir], {
        cwd: path.join(root, "packages", pkg.dir),
        env: { ...process.env }
      })
      const file = out.split("\n").map((l) => l.trim()).find((l) => l.endsWith(".tgz"))
      if (file === undefined || !fs.existsSync(file)) throw new Error(`pnpm pack printed no tarball for ${pkg.name}:\n${out}`)
      tarballs.set(pkg.name, file)
    }
  })
  const extra = { "@types/node": "^24.0.0", "@effect/platform-node": "^4.0.0", "@effect/vitest": "^4.0.5", vitest: "^5.0.0" }
  ;[latest, lowest] = await Promise.all([
    makeProject("latest", "^4.0.0", extra, ["main.ts", "surface.ts", "conformance.test.ts"]),
    // @effect/vitest needs effect >= 4.0.5, so the lowest project leaves out the optional test kit.
    makeProject("lowest", lowestEffect, { "@types/node": "^24.0.0", "@effect/platform-node": lowestEffect }, ["main.ts"])
  ])
  // tsc emits out/main.js in each project: the program the plain-node runs below execute.
  await Promise.all([
    typecheck(tsc7, ["-p", "tsconfig.json"], latest),
    typecheck(tsc7, ["-p", "tsconfig.json"], lowest)
  ].map((p, i) => timed(`tsc 7 NodeNext + emit (${i === 0 ? "latest" : "lowest"})`, () => p)))
  startCheck("tsc 5.9 NodeNext", () => typecheck(tsc5, ["-p", "tsconfig.json", "--noEmit"], latest))
  startCheck("tsc 7 Bundler", () => typecheck(tsc7, ["-p", "tsconfig.bundler.json"], latest))
  startCheck("tsc 7 Bundler (lowest)", () => typecheck(tsc7, ["-p", "tsconfig.bundler.json"], lowest))
  console.log(
    `[packaging] effect ${installed(latest, "effect")} (newest 4.x) and ${installed(lowest, "effect")} (lowest); `
      + `Node ${[...nodeBins.keys()].join(", ")}; tarballs in ${tarballDir}`
  )
}, 900_000)

afterAll(() => {
  console.log(`[packaging] ${timings.join(", ")}`)
  if (process.env.SWITCHYARD_KEEP_PACKAGING === "1") console.log(`[packaging] kept ${work}`)
  else fs.rmSync(work, { recursive: true, force: true })
})

const tarList = (file: string) => ok("tar", ["-tzf", file], { cwd: work }).then((o) => o.split("\n").filter((l) => l !== ""))
const tarManifest = async (file: string) => JSON.parse(await ok("tar", ["-xzOf", file, "package/package.json"], { cwd: work }))

describe("packed tarballs", () => {
  for (const pkg of packages) {
    it(`${pkg.name}: built exports, user files only, real version ranges`, async () => {
      const file = tarballs.get(pkg.name) ?? ""
      const listing = await tarList(file)
      const manifest = await tarManifest(file)
      const inTarball = (p: string) => listing.includes(`package/${p.replace(/^\.\//, "")}`)

      expect(JSON.stringify(manifest)).not.toContain("workspace:")
      expect(manifest.sideEffects).toBe(false)
      expect(manifest.type).toBe("module")
      expect(manifest.license).toBe("MIT")
      expect(Object.keys(manifest.exports).sort()).toEqual([...pkg.entries, "./package.json"].sort())
      for (const entry of pkg.entries) {
        const conditions = manifest.exports[entry]
        expect(Object.keys(conditions), `${entry} conditions (types first)`).toEqual(["types", "import", "default"])
        for (const target of Object.values<string>(conditions)) {
          expect(target, `${entry} points into dist`).toMatch(/^\.\/dist\/.*\.(d\.ts|js)$/)
          expect(inTarball(target), `${target} is in the tarball`).toBe(true)
        }
        const js = String(conditions.import)
        expect(inTarball(`${js}.map`), `${js}.map`).toBe(true)
        expect(inTarball(String(conditions.types).replace(/\.d\.ts$/, ".d.ts.map")), "declaration map").toBe(true)
      }
      expect(inTarball(manifest.main) && inTarball(manifest.types)).toBe(true)
      for (const required of ["README.md", "LICENSE", "CHANGELOG.md", "package.json"]) expect(inTarball(required), required).toBe(true)
      const tops = new Set(listing.map((l) => l.split("/")[1]))
      expect([...tops].sort()).toEqual(["CHANGELOG.md", "LICENSE", "README.md", "dist", "package.json", "src"])
      expect(listing.filter((l) => /\.test\.ts$|vitest\.config|tsconfig/.test(l))).toEqual([])

      // Declarations import `.js`, like the JavaScript (tsc keeps `.ts` there; the build rewrites them).
      const dts = await ok("tar", ["-xzOf", file, "--wildcards", "package/dist/*.d.ts"], { cwd: work })
      expect(dts).not.toMatch(/from "\.{1,2}\/[^"]*\.ts"/)

      expect(manifest.peerDependencies.effect).toBe("^4.0.0")
      expect(manifest.dependencies?.effect).toBeUndefined()
      if (pkg.dir !== "core") expect(manifest.dependencies["@switchyard/core"]).toBe(`^${manifest.version}`)
      for (const [dep, range] of Object.entries<string>(manifest.dependencies ?? {})) {
        expect(range, `${dep} has a version range`).toMatch(/^\^\d+\.\d+\.\d+$/)
      }
    })
  }

  it("pnpm publish --dry-run works for every package", async () => {
    await Promise.all(packages.map(async (pkg) => {
      const out = await ok(pnpm, ["publish", "--dry-run", "--no-git-checks"], {
        cwd: path.join(root, "packages", pkg.dir),
        env: { ...process.env }
      })
      expect(out, pkg.name).toContain(pkg.name)
    }))
  }, 120_000)
})

describe("a fresh project with the tarballs and the registry's effect", () => {
  // tsc 7 under NodeNext already passed in the setup (it emitted the program run below).
  // TypeScript 5.9 (what many projects still use) under NodeNext only: tsc 5.9 takes about 10 times as long.
  for (const label of ["tsc 5.9 NodeNext", "tsc 7 Bundler"]) {
    it(`type-checks with ${label} (strict, skipLibCheck off)`, () => check(label), 180_000)
  }

  for (const major of nodeMajors) {
    for (const broker of ["memory", "amqp", "nats"] as const) {
      it(`runs with plain node ${major} on ${broker}`, async () => {
        const output = await ok(nodeBins.get(major) ?? "", ["out/main.js", broker], { cwd: latest, env: childEnv(nodeBins.get(major)), timeoutMs: 60_000 })
        const line = output.split("\n").find((l) => l.startsWith("{"))
        expect(line, output).toBeDefined()
        const report = JSON.parse(line ?? "{}")
        expect(report.node.split(".")[0]).toBe(major)
        expect(report.broker).toBe({ memory: "memory", amqp: "rabbitmq", nats: "nats-jetstream" }[broker])
        expect(report.handled).toEqual(["o-1", "o-2", "o-3"])
        expect(report.deadLetterReason).toMatch(/not valid JSON/)
      }, 90_000)
    }

    it(`the packed switchyard binary runs with plain node ${major} (health on memory)`, async () => {
      const binary = path.join(latest, "node_modules", ".bin", "switchyard")
      expect(fs.existsSync(binary), "node_modules/.bin/switchyard").toBe(true)
      const output = await ok(nodeBins.get(major) ?? "", [binary, "--broker", "memory", "health", "--json"], {
        cwd: latest,
        env: childEnv(nodeBins.get(major)),
        timeoutMs: 60_000
      })
      const line = output.split("\n").find((l) => l.startsWith("{"))
      expect(line, output).toBeDefined()
      expect(JSON.parse(line ?? "{}")).toMatchObject({ broker: "memory", capabilities: { consumerGroups: true } })
    }, 90_000)

    it(`runs the README's "Install in your project" example with plain node ${major} and stops on SIGTERM`, async () => {
      const readme = fs.readFileSync(path.join(root, "README.md"), "utf8")
      const block = /<!-- packaging-test:example -->\s*```js\n([\s\S]*?)```/.exec(readme)?.[1]
      expect(block, "the README marks its install example with <!-- packaging-test:example -->").toBeDefined()
      fs.writeFileSync(path.join(latest, "readme-example.js"), block ?? "")
      let stopped = false
      const result = await exec(nodeBins.get(major) ?? "", ["readme-example.js"], {
        cwd: latest,
        env: childEnv(nodeBins.get(major)),
        timeoutMs: 60_000,
        onOutput: (all, kill) => {
          if (!stopped && all.includes("order o-1: 42")) {
            stopped = true
            kill("SIGTERM")
          }
        }
      })
      expect(stopped, result.output).toBe(true)
      expect(result.output).toContain("draining in-flight messages")
      expect(result.code, result.output).toBe(130)
    }, 90_000)
  }

  it("runs the packed conformance suite with vitest from the registry", async () => {
    const report = path.join(latest, "conformance-report.json")
    await timed("conformance (vitest)", () =>
      ok(path.join(latest, "node_modules", ".bin", "vitest"), ["run", "conformance.test.ts", "--reporter=json", `--outputFile=${report}`], {
        cwd: latest,
        env: childEnv(nodeBins.get("24")),
        timeoutMs: 180_000
      }))
    const result = JSON.parse(fs.readFileSync(report, "utf8"))
    expect(result.numFailedTests).toBe(0)
    expect(result.numPassedTests).toBeGreaterThanOrEqual(10)
  }, 200_000)
})

describe(`the lowest effect the peer range claims (${lowestEffect})`, () => {
  it("type-checks under Bundler resolution too", async () => {
    expect(installed(lowest, "effect")).toBe(lowestEffect)
    await check("tsc 7 Bundler (lowest)")
  }, 120_000)

  for (const major of nodeMajors) {
    for (const broker of ["memory", "amqp"] as const) {
      it(`runs with plain node ${major} on ${broker}`, async () => {
        const output = await ok(nodeBins.get(major) ?? "", ["out/main.js", broker], { cwd: lowest, env: childEnv(nodeBins.get(major)), timeoutMs: 60_000 })
        expect(output).toContain(`"handled":["o-1","o-2","o-3"]`)
      }, 90_000)
    }
  }
})
