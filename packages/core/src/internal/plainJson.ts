/**
 * A compiled fast path of `Codec.json` for plain schemas: structs, arrays, strings, numbers, booleans,
 * literals, unions of literals, `null` and `NullOr`, with or without checks (`Schema.Int`, `isNonEmpty`,
 * filters), and no transformations or index signatures. For these the Schema pass (in either direction)
 * checks each value's type and copies it into a new value (known keys only, in the schema's order), then
 * runs the checks on it. A function compiled once per schema does the same in plain JavaScript, without the
 * Schema parser's per-node machinery (measured on the benchmark's order, a micro loop: the JSON codec's
 * encode ~0.95 µs and decode ~0.6 µs, ~0.33 µs each here).
 *
 * It answers only when it is sure: a value it does not accept (a wrong type, a non-finite number, a class
 * instance or an inherited property, a missing key) gives {@link invalid}, and the caller runs the Schema's
 * JSON codec, which then decides and words the error (`NaN` as the string `"NaN"`, for one, is valid there).
 * For everything it accepts, the result is what the JSON codec gives: a finite number is its own JSON form,
 * and JSON-parsed input has only plain objects with own keys.
 */
import { SchemaAST } from "effect"

/** What a compiled projection returns for a value it does not vouch for. */
export const invalid: unique symbol = Symbol("invalid")

/** Checks a value against the schema and copies it as the Schema would; {@link invalid} when unsure. */
export type Project = (value: unknown) => unknown

const isPlainObject = (value: unknown): value is Record<string, unknown> => {
  if (typeof value !== "object" || value === null) return false
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

const hasNoTransformation = (ast: SchemaAST.AST): boolean =>
  ast.encoding === undefined && (!SchemaAST.isObjects(ast) || ast.encodingChecks === undefined)

/** The Schema's default parse options (what `decodeUnknownResult` runs checks with). */
const defaultOptions: SchemaAST.ParseOptions = {}

/** Whether every check (`Schema.Int`, `isNonEmpty`, a struct's own filter…) passes, run as the Schema runs it. */
const passes = (checks: ReadonlyArray<SchemaAST.Check<unknown>>, value: unknown, ast: SchemaAST.AST): boolean => {
  for (const check of checks) {
    if (check._tag === "FilterGroup" ? !passes(check.checks, value, ast) : check.run(value, ast, defaultOptions) !== undefined) return false
  }
  return true
}

/** The projection, then the node's checks on what it gives (the Schema checks the parsed value). */
const withChecks = (ast: SchemaAST.AST, project: Project): Project => {
  const checks = ast.checks
  if (checks === undefined) return project
  return (value) => {
    const projected = project(value)
    return projected === invalid || !passes(checks, projected, ast) ? invalid : projected
  }
}

interface Property {
  readonly name: string
  readonly optional: boolean
  readonly project: Project
}

const projectObject = (properties: ReadonlyArray<Property>): Project => {
  const names = properties.map((property) => property.name)
  const projects = properties.map((property) => property.project)
  const optional = properties.map((property) => property.optional)
  return (value) => {
    if (!isPlainObject(value)) return invalid
    const out: Record<string, unknown> = {}
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!
      const field = value[name]
      // Read first, `hasOwn` only when it reads as absent: a plain object's keys are its own (its prototype,
      // Object.prototype, holds only functions, which no projection accepts).
      if (field === undefined) {
        if (optional[i] === true && !Object.hasOwn(value, name)) continue
        return invalid
      }
      const projected = projects[i]!(field)
      if (projected === invalid) return invalid
      out[name] = projected
    }
    return out
  }
}

const projectArray = (element: Project): Project => (value) => {
  if (!Array.isArray(value)) return invalid
  const out = new Array<unknown>(value.length)
  for (let i = 0; i < value.length; i++) {
    // A hole reads as `undefined`, which no element projection accepts.
    const projected = element(value[i])
    if (projected === invalid) return invalid
    out[i] = projected
  }
  return out
}

const string: Project = (value) => (typeof value === "string" ? value : invalid)
const number: Project = (value) => (typeof value === "number" && Number.isFinite(value) ? value : invalid)
const boolean: Project = (value) => (typeof value === "boolean" ? value : invalid)
const nullValue: Project = (value) => (value === null ? value : invalid)

const compileObjects = (ast: SchemaAST.Objects): Project | undefined => {
  if (ast.indexSignatures.length > 0) return undefined
  const properties: Array<Property> = []
  for (const signature of ast.propertySignatures) {
    // A property named `__proto__` would set the copy's prototype: left to the Schema.
    if (typeof signature.name !== "string" || signature.name === "__proto__") return undefined
    const project = compile(signature.type)
    if (project === undefined) return undefined
    properties.push({ name: signature.name, optional: SchemaAST.isOptional(signature.type), project })
  }
  return projectObject(properties)
}

/** The projection of a plain schema, or `undefined` when the schema is not plain (the Schema then does it all). */
export const compile = (ast: SchemaAST.AST): Project | undefined => {
  if (!hasNoTransformation(ast)) return undefined
  const project = compileNode(ast)
  return project === undefined ? undefined : withChecks(ast, project)
}

const compileNode = (ast: SchemaAST.AST): Project | undefined => {
  switch (ast._tag) {
    case "String":
      return string
    case "Number":
      return number
    case "Boolean":
      return boolean
    case "Null":
      return nullValue
    case "Literal": {
      const literal = ast.literal
      if (typeof literal === "number" ? !Number.isFinite(literal) : typeof literal !== "string" && typeof literal !== "boolean") return undefined
      return (value) => (value === literal ? value : invalid)
    }
    case "Arrays": {
      if (ast.elements.length > 0 || ast.rest.length !== 1) return undefined
      const element = compile(ast.rest[0]!)
      return element === undefined ? undefined : projectArray(element)
    }
    case "Objects":
      return compileObjects(ast)
    case "Union":
      return compileUnion(ast)
    default:
      return undefined
  }
}

/**
 * Unions whose members cannot both accept a value: literals only (`Schema.Literals`), or one member and
 * `null` (`Schema.NullOr`). The member that accepts a value is then the one the Schema picks.
 */
const compileUnion = (ast: SchemaAST.Union): Project | undefined => {
  const literals = ast.types.map((member) => (SchemaAST.isLiteral(member) && member.checks === undefined && member.encoding === undefined ? member.literal : undefined))
  if (literals.every((literal) => typeof literal === "string" || typeof literal === "boolean" || (typeof literal === "number" && Number.isFinite(literal)))) {
    const allowed = new Set<unknown>(literals)
    return (value) => (allowed.has(value) ? value : invalid)
  }
  const others = ast.types.filter((member) => !SchemaAST.isNull(member) || member.checks !== undefined)
  if (ast.types.length !== 2 || others.length !== 1) return undefined
  const member = compile(others[0]!)
  return member === undefined ? undefined : (value) => (value === null ? null : member(value))
}
