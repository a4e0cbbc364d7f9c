#!/usr/bin/env node
/**
 * The `switchyard` executable.
 *
 * @since 0.1.0
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Effect } from "effect"
import * as Cli from "./Cli.ts"

const args = process.argv.slice(2)

NodeRuntime.runMain(Cli.run(args).pipe(Effect.provide(NodeServices.layer)), { teardown: Cli.teardown(args) })
