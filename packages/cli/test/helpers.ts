/**
 * Spawns the CLI as a user runs it (`node --import tsx packages/cli/src/bin.ts …` in the workspace) and
 * collects its output and exit code.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

export const root = path.resolve(import.meta.dirname, "..", "..", "..")
export const bin = path.join(root, "packages", "cli", "src", "bin.ts")

export interface Result {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** This process's environment without what vitest put there, plus `env`. */
export const childEnv = (env: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const out: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(VITEST|NODE_OPTIONS$|NODE_ENV$|TEST$|FORCE_COLOR$)/.test(name)) continue
    out[name] = value
  }
  return { ...out, NO_COLOR: "1", ...env }
}

export interface Running {
  readonly child: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  /** Resolves once `predicate` holds for the output so far (stdout, stderr). */
  readonly waitFor: (predicate: (stdout: string, stderr: string) => boolean) => Promise<void>
  readonly exited: Promise<Result>
}

/** Starts the CLI; `input` is written to its stdin (then closed). */
export const start = (
  args: ReadonlyArray<string>,
  options: { readonly env?: Record<string, string>; readonly input?: string; readonly stdinFile?: string } = {}
): Running => {
  const stdinFd = options.stdinFile === undefined ? undefined : fs.openSync(options.stdinFile, "r")
  const child = spawn(process.execPath, ["--import", "tsx", bin, ...args], {
    cwd: root,
    env: childEnv(options.env),
    stdio: [stdinFd ?? "pipe", "pipe", "pipe"]
  })
  if (stdinFd !== undefined) fs.closeSync(stdinFd)
  let stdout = ""
  let stderr = ""
  const waiters = new Set<() => void>()
  const check = () => {
    for (const w of [...waiters]) w()
  }
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString()
    check()
  })
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString()
    check()
  })
  child.stdin?.end(options.input ?? "")
  const exited = new Promise<Result>((resolve, reject) => {
    child.on("error", reject)
    child.on("close", (code, signal) => {
      check()
      resolve({ code, signal, stdout, stderr })
    })
  })
  const waitFor = (predicate: (stdout: string, stderr: string) => boolean) =>
    new Promise<void>((resolve, reject) => {
      const w = () => {
        if (predicate(stdout, stderr)) {
          waiters.delete(w)
          resolve()
        } else if (child.exitCode !== null || child.signalCode !== null) {
          waiters.delete(w)
          reject(new Error(`the CLI exited (${child.exitCode ?? child.signalCode}) first:\n${stdout}\n${stderr}`))
        }
      }
      waiters.add(w)
      w()
    })
  return { child, stdout: () => stdout, stderr: () => stderr, waitFor, exited }
}

/** Runs the CLI to its end. */
export const run = (
  args: ReadonlyArray<string>,
  options: { readonly env?: Record<string, string>; readonly input?: string; readonly stdinFile?: string } = {}
): Promise<Result> => start(args, options).exited

/** The one JSON line a `--json` command printed. */
export const json = (result: Result): any => {
  const line = result.stdout.split("\n").find((l) => l.startsWith("{"))
  if (line === undefined) throw new Error(`no JSON line (exit ${result.code}):\n${result.stdout}\n${result.stderr}`)
  return JSON.parse(line)
}

export const unique = (prefix: string): string =>
  `sy-cli.${prefix}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`

/** A temporary file with `text`. */
export const tempFile = (name: string, text: string): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "switchyard-cli-"))
  const file = path.join(dir, name)
  fs.writeFileSync(file, text)
  return file
}
