// The two internals of oidc-provider that bench/peers/oidc-provider.ts uses (no published types).
declare module 'oidc-provider/lib/adapters/memory_adapter.js' {
  import type { Adapter } from 'oidc-provider'
  /** Its in-memory adapter for one model, on the given store. */
  export default class MemoryAdapter implements Adapter {
    constructor(model: string, store: unknown, clockTolerance?: number)
    upsert: Adapter['upsert']
    find: Adapter['find']
    findByUserCode: Adapter['findByUserCode']
    findByUid: Adapter['findByUid']
    consume: Adapter['consume']
    destroy: Adapter['destroy']
    revokeByGrantId: Adapter['revokeByGrantId']
  }
}
declare module 'oidc-provider/lib/helpers/lru.js' {
  export default class LRU {
    constructor(options: { maxSize: number })
  }
}
