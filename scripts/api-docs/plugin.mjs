// A local TypeDoc plugin: names each entry-point module after the import path users write
// (`@switchyard/core/testing`) instead of its directory (`core/src/testing`).
import { Converter } from "typedoc"

/** `core/src` → `@switchyard/core`, `core/src/testing` → `@switchyard/core/testing`. */
const importPath = (moduleName) => {
  const m = /^([a-z][a-z0-9-]*)\/src(\/.*)?$/.exec(moduleName)
  return m === null ? undefined : `@switchyard/${m[1]}${m[2] ?? ""}`
}

/** @param {import("typedoc").Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    for (const module of context.project.children ?? []) {
      const name = importPath(module.name)
      if (name === undefined) throw new Error(`api-docs plugin: no import path for module ${module.name}`)
      module.name = name
    }
  })
}
