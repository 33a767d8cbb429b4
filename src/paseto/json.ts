/**
 * Strict JSON for PASETO payloads and footers. `JSON.parse` keeps the last of duplicate keys
 * silently, and the PASETO spec requires that tokens with duplicate keys be rejected (two parsers
 * could otherwise read different claims from one signed token). Depth is bounded before parsing,
 * so an untrusted footer cannot make the parser recurse deeply.
 */

export interface StrictJsonOptions {
  /** Deepest allowed nesting of objects and arrays; the top-level object counts as 1. */
  maxDepth: number
}

/**
 * One pass over the text that counts the member names of every object (strings in key position)
 * and refuses nesting deeper than `maxDepth`. Strings are skipped whole, escaped quotes included,
 * so brackets and commas inside them are not structure. It does not check the rest of the syntax:
 * `JSON.parse` does that next.
 */
function countMemberNames(text: string, maxDepth: number): number {
  const inObject: boolean[] = []
  let expectName = false
  let names = 0
  const length = text.length
  let i = 0
  while (i < length) {
    const c = text.charCodeAt(i)
    if (c === 0x22 /* " */) {
      let end = text.indexOf('"', i + 1)
      // A quote after an odd number of backslashes is escaped and does not end the string.
      for (;;) {
        if (end === -1) throw new Error('unterminated JSON string')
        let backslashes = 0
        while (text.charCodeAt(end - 1 - backslashes) === 0x5c /* \ */) backslashes++
        if ((backslashes & 1) === 0) break
        end = text.indexOf('"', end + 1)
      }
      if (expectName) {
        names++
        expectName = false
      }
      i = end + 1
      continue
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (inObject.length >= maxDepth) throw new Error(`JSON nested deeper than ${maxDepth}`)
      inObject.push(c === 0x7b)
      expectName = c === 0x7b
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      inObject.pop()
      expectName = false
    } else if (c === 0x2c /* , */) {
      expectName = inObject[inObject.length - 1] === true
    }
    i++
  }
  return names
}

/** Own keys of every object in a parsed JSON value. */
function countKeys(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0
  let count = 0
  if (Array.isArray(value)) {
    for (const element of value) count += countKeys(element)
    return count
  }
  const record = value as Record<string, unknown>
  for (const key of Object.keys(record)) count += 1 + countKeys(record[key])
  return count
}

/**
 * Parses text that must be a JSON object with unique keys at every depth and at most `maxDepth`
 * levels of nesting; throws a plain `Error` otherwise.
 *
 * Duplicates are found by counting: the scan counts every member name in the text, and
 * `JSON.parse` collapses duplicates, so the parsed value has fewer keys exactly when some object
 * repeated a name. Names are thereby compared after unescaping by the parser itself
 * (`{"a":1,"\u0061":2}` is a duplicate), and no second unescaper can disagree with it.
 *
 * The result comes straight from `JSON.parse`, which creates a `__proto__` member as an own data
 * property (it never sets the prototype); it is not merged into any other object.
 */
export function parseJsonObjectStrict(
  text: string,
  { maxDepth }: StrictJsonOptions,
): Record<string, unknown> {
  const names = countMemberNames(text, maxDepth)
  const value: unknown = JSON.parse(text)
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error('JSON value is not an object')
  }
  if (countKeys(value) !== names) throw new Error('duplicate key in JSON object')
  return value as Record<string, unknown>
}
