/**
 * The raw argon2id rate `npm run bench` compares logins with: as many verifications at once as
 * the machine has cores, for 4 s, with the server's parameters. Run as its own process with the
 * thread pool the server gets from bin/tessera.cjs (one thread per concurrent hash), so that the
 * two figures differ only by what a login adds. Prints verifications per second.
 */
import { availableParallelism } from 'node:os'
import { hash, verify } from '@node-rs/argon2'

const PASSWORD = 'benchmark lantern orbit 42'
// 2 = Argon2id (a const enum, not importable under verbatimModuleSyntax).
const phc = await hash(PASSWORD, { algorithm: 2, memoryCost: 19456, timeCost: 2, parallelism: 1 })
const end = performance.now() + 4000
let n = 0
await Promise.all(
  Array.from({ length: availableParallelism() }, async () => {
    while (performance.now() < end) {
      await verify(phc, PASSWORD)
      n++
    }
  }),
)
process.stdout.write(String(n / 4))
