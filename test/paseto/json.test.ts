import { describe, expect, it } from 'vitest'
import { parseJsonObjectStrict } from '../../src/paseto/json.js'

const strict = (text: string, maxDepth = 4) => parseJsonObjectStrict(text, { maxDepth })

describe('parseJsonObjectStrict refuses duplicate keys, which JSON.parse keeps silently', () => {
  it('at any depth, compared after unescaping', () => {
    for (const text of [
      '{"a":1,"a":1}',
      '{"a":1,"a":2}',
      '{"a":1,"\\u0061":2}',
      '{"\\u00e9":1,"é":2}',
      '{"a\\"":1,"a\\"":2}',
      '{"a\\\\":1,"a\\\\":2}',
      '{"a":{"b":1,"b":2}}',
      '{"a":[{"b":1},{"c":1,"c":2}]}',
      '{"__proto__":1,"__proto__":2}',
      '{"a":"\\\\","a":1}',
      '{ "a" : 1 , "a" : 2 }',
    ]) {
      expect(JSON.parse(text)).toBeTypeOf('object')
      expect(() => strict(text), text).toThrow(/duplicate/)
    }
  })

  it('keys that differ, or look alike only inside strings, are fine', () => {
    for (const text of [
      '{"a":1,"b":1}',
      '{"a":{"a":1}}',
      '{"a":[{"a":1},{"a":1}]}',
      '{"a":"{\\"b\\":1,\\"b\\":2}"}',
      '{"a":"\\"","b":"\\\\"}',
      '{"a":"x,\\"a\\":1"}',
      '{"A":1,"a":2}',
      '{"1":{"x":1},"b":{"x":2}}',
      '{}',
    ]) {
      expect(strict(text), text).toEqual(JSON.parse(text))
    }
  })
})

describe('parseJsonObjectStrict bounds nesting before parsing', () => {
  it('counts the top-level object as depth 1', () => {
    expect(strict('{"a":{}}', 2)).toEqual({ a: {} })
    expect(strict('{"a":[1]}', 2)).toEqual({ a: [1] })
    expect(strict('{"a":"[[[{{{"}', 1)).toEqual({ a: '[[[{{{' })
    for (const text of ['{"a":{"b":{}}}', '{"a":[[]]}', '{"a":[{}]}']) {
      expect(() => strict(text, 2), text).toThrow(/deeper/)
    }
    expect(() => strict('{"a":{}}', 1)).toThrow(/deeper/)
  })

  it('refuses very deep input without recursing into it', () => {
    const deep = `{"a":${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}}`
    expect(() => strict(deep, 4)).toThrow(/deeper/)
  })
})

describe('parseJsonObjectStrict takes only JSON objects', () => {
  it('refuses other values and invalid JSON', () => {
    const invalid = ['', '{', '{"a":1,}', "{'a':1}", '{"a":1}x', '{"a"}', '{"a":"\\x"}', '{"a":"']
    for (const text of ['[]', '1', '"s"', 'null', 'true', ...invalid]) {
      expect(() => strict(text), text).toThrow()
    }
  })

  it('keeps __proto__ an own property and leaves Object.prototype alone', () => {
    const value = strict('{"__proto__":{"polluted":true},"a":1}')
    expect(Object.hasOwn(value, '__proto__')).toBe(true)
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype)
    expect((value as { polluted?: boolean }).polluted).toBeUndefined()
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined()
  })
})
