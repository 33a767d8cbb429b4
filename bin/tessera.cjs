#!/usr/bin/env node
'use strict'
// The `tessera` command. CommonJS, and kept this small, because libuv sizes its thread pool from
// UV_THREADPOOL_SIZE when it is first used, and an ES-module entry has already used it (to read
// its own files) before any of its code runs.
//
// Password hashes are the pool's only steady work, capped at ARGON2_MAX_CONCURRENCY at a time.
// With exactly that many threads each hash lands on a warm thread; with libuv's default of 4 on
// a 2-core machine, a login flood served about 20 % fewer logins (README, "Benchmarks").
// An explicit UV_THREADPOOL_SIZE wins; a malformed ARGON2_MAX_CONCURRENCY is left for the
// configuration check to report.
const { availableParallelism, homedir } = require('node:os')
const { join } = require('node:path')
const nodeModule = require('node:module')

if (process.env.UV_THREADPOOL_SIZE === undefined) {
  const configured = Number(process.env.ARGON2_MAX_CONCURRENCY)
  const hashes =
    Number.isInteger(configured) && configured >= 1 && configured <= 256
      ? configured
      : availableParallelism()
  process.env.UV_THREADPOOL_SIZE = String(hashes)
}

// Node >= 22.1 keeps the compiled code of the bundle between starts (docs/performance.md,
// "Start-up"), here only in the running user's own cache folder, never a shared one such as
// Node's default under /tmp: whoever can write the cache chooses code that runs as Tessera.
// Where that folder cannot be made, Node goes on without a cache, as on Node 20.
// NODE_COMPILE_CACHE (a folder) and NODE_DISABLE_COMPILE_CACHE=1 are Node's own overrides.
const cacheFolder = userCacheFolder()
if (typeof nodeModule.enableCompileCache === 'function' && cacheFolder !== undefined) {
  nodeModule.enableCompileCache(cacheFolder)
}

/** $XDG_CACHE_HOME/tessera or ~/.cache/tessera; none for a user without a home. */
function userCacheFolder() {
  if (process.env.XDG_CACHE_HOME) return join(process.env.XDG_CACHE_HOME, 'tessera')
  try {
    return join(homedir(), '.cache', 'tessera')
  } catch {
    return undefined
  }
}

// The bundled build (tools/bundle.mjs, run by `npm run build` after tsc): a few modules instead of
// some 570 to resolve and link, half the start-up time (docs/performance.md, "Start-up").
import('../dist/bundle/tessera.js').then((cli) => cli.main())
