/**
 * A faster decoder for `Codec.json`'s common case. `Schema.toCodecJson` gives every `Schema.Number` an encoding
 * link (`NaN` / `±Infinity` travel as strings), and running those links costs a decode about as much again
 * as the rest of the Schema pass. A parsed JSON number is always finite, so for a schema whose JSON codec
 * differs from the schema itself only by those links, decoding the parsed value with the schema itself gives
 * the same value whenever it succeeds; only a value it rejects (a `"NaN"` string, or an invalid payload)
 * needs the JSON codec, which then decides and words the error.
 *
 * Not taken where the two can disagree: a union with a changed member, unless a literal property tells its
 * members apart (in `Union([Number, String])`, `"NaN"` is the string to one and the number to the other),
 * `Undefined` (`null` in JSON, so `Schema.optional`; `Schema.optionalKey` is fine), declarations (`Date`,
 * `Option`…), recursive schemas and records whose keys are not plain strings.
 */
import { Schema, SchemaAST } from "effect"

const unchangedInJson = (ast: SchemaAST.AST): boolean => Schema.toCodecJson(Schema.make(ast)).ast === ast

/** Whether decoding with the schema itself, when it succeeds, gives what its JSON codec gives. */
export const decodesAsJson = (ast: SchemaAST.AST): boolean => {
  if (unchangedInJson(ast)) return true
  // toCodecJson derives only the most encoded end of a transformation chain; the transformations are the same.
  if (ast.encoding !== undefined) return decodesAsJson(ast.encoding[ast.encoding.length - 1]!.to)
  switch (ast._tag) {
    case "Number":
      return true
    case "Arrays":
      return ast.elements.every(decodesAsJson) && ast.rest.every(decodesAsJson)
    case "Objects":
      return ast.propertySignatures.every((property) => decodesAsJson(property.type)) &&
        ast.indexSignatures.every((index) =>
          SchemaAST.isString(index.parameter) && index.parameter.encoding === undefined && decodesAsJson(index.type)
        )
    case "Union":
      return ast.types.every(decodesAsJson) && isDiscriminated(ast.types)
    default:
      return false
  }
}

/**
 * A literal property on which every member differs (the `_tag` of tagged structs). An input a member accepts
 * has that member's literal, which every other member's JSON codec rejects too: the member the schema picks
 * is the one the JSON codec picks.
 */
const isDiscriminated = (members: ReadonlyArray<SchemaAST.AST>): boolean => {
  const [first] = members
  if (first === undefined || !SchemaAST.isObjects(first) || first.encoding !== undefined) return false
  return first.propertySignatures.some((candidate) => {
    const seen = new Set<unknown>()
    return members.every((member) => {
      if (!SchemaAST.isObjects(member) || member.encoding !== undefined) return false
      const property = member.propertySignatures.find((p) => p.name === candidate.name)
      if (property === undefined || !SchemaAST.isLiteral(property.type) || property.type.encoding !== undefined) return false
      if (SchemaAST.isOptional(property.type) || seen.has(property.type.literal)) return false
      seen.add(property.type.literal)
      return true
    })
  })
}
