// The two internals of oidc-provider that bench/peers/oidc-provider.ts uses (no published types).
declare module 'oidc-provider/lib/adapters/memory_adapter.js' {
  export function setStorage(store: unknown): void
}
declare module 'oidc-provider/lib/helpers/lru.js' {
  export default class LRU {
    constructor(options: { maxSize: number })
  }
}
