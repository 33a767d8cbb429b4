/**
 * Characters no text field of Tessera may hold (README "HTTP", "Control characters"): C0 controls
 * (NUL among them, which PostgreSQL cannot store in text), DEL, C1 controls, and the Unicode
 * bidirectional and format controls that make a name display as something else (LRM, RLM, the
 * embeddings and overrides U+202A-U+202E, the isolates U+2066-U+2069, and the BOM / zero-width
 * no-break space U+FEFF).
 */
const CONTROL_CHARACTERS =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point.
  /[\u0000-\u001F\u007F-\u009F\u200E\u200F\u202A-\u202E\u2066-\u2069\uFEFF]/u
const CONTROL_CHARACTERS_GLOBAL = new RegExp(CONTROL_CHARACTERS.source, 'gu')
/** Passwords may hold any printable character, bidi marks included, but no C0/C1 control. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point.
const PASSWORD_CONTROL_CHARACTERS = /[\u0000-\u001F\u007F-\u009F]/u

export function hasControlCharacters(text: string): boolean {
  return CONTROL_CHARACTERS.test(text)
}

export function hasPasswordControlCharacters(text: string): boolean {
  return PASSWORD_CONTROL_CHARACTERS.test(text)
}

/** `text` without the characters above, for text from elsewhere that is kept, not refused. */
export function stripControlCharacters(text: string): string {
  return text.replace(CONTROL_CHARACTERS_GLOBAL, '')
}
