/**
 * FNV-1a 32-bit hash of a string's UTF-16 code units: cheap, stable across processes, good spread for
 * partition and lane selection. (Kafka's Java-compatible murmur2 lives in the Kafka package.) `basis`
 * replaces FNV's offset basis, for a second, differently seeded hash of the same string.
 */
export const keyHash = (key: string, basis = 0x811c9dc5): number => {
  let hash = basis
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return hash >>> 0
}
