import { Gauge, type Registry } from 'prom-client'
import type { Clock } from '../clock.js'
import type { LiveRevocations } from './live.js'

/**
 * The revocation log's figures at `GET /metrics`, read from this process's copy when scraped:
 * how many entries it holds, how long ago it last read the log (an alert on this catches a replica
 * whose `/v1/authz` and streams have stopped learning of revocations) and its open streams.
 */
export function registerRevocationMetrics(
  registry: Registry,
  live: LiveRevocations,
  clock: Clock,
): void {
  new Gauge({
    name: 'tessera_revocations_live',
    help: 'Revocation log entries this process holds (those younger than the retention)',
    registers: [registry],
    collect() {
      this.set(live.size())
    },
  })
  new Gauge({
    name: 'tessera_revocations_sync_age_seconds',
    help: 'Seconds since this process last read the revocation log (+Inf before the first read)',
    registers: [registry],
    collect() {
      this.set((clock() - live.syncedAt()) / 1000)
    },
  })
  new Gauge({
    name: 'tessera_revocation_streams',
    help: 'Open GET /v1/revocations/stream connections of this process',
    registers: [registry],
    collect() {
      this.set(live.streams())
    },
  })
}
