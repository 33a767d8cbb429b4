/**
 * The load generator of `npm run bench`, run as its own process so that its work is not measured
 * with the driver's (which verifies tokens for the crypto figures and starts the server). Reads one
 * job as JSON on stdin, runs autocannon and prints the result's figures as JSON on stdout.
 *
 * Jobs are plain autocannon options, plus `refreshTokens` for the refresh scenario: one live token
 * per connection; each request spends one and its response puts the successor back (autocannon
 * keeps no state between a connection's requests that a request could read).
 */
import autocannon from 'autocannon'

export interface LoadJob {
  url: string
  connections: number
  duration: number
  method?: 'GET' | 'POST'
  path?: string
  headers?: Record<string, string>
  body?: string
  /** Requests per second over all connections (a paced probe), unset: as fast as possible. */
  overallRate?: number
  refreshTokens?: string[]
  /**
   * How a refresh is sent, for a server other than Tessera (the peer's refresh grant): the path,
   * the form fields besides `refresh_token`, and headers (client authentication). Unset:
   * Tessera's `POST /v1/user/auth/refresh` with a JSON body.
   */
  refreshGrant?: { path: string; form: Record<string, string>; headers?: Record<string, string> }
}

export interface LoadResult {
  rate: number
  p99: number
  errors: number
  /** The refresh scenario: the live tokens left (the next round continues with them). */
  refreshTokens?: string[]
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

function options(job: LoadJob): autocannon.Options {
  const base = {
    url: job.url,
    connections: job.connections,
    duration: job.duration,
    ...(job.overallRate === undefined ? {} : { overallRate: job.overallRate }),
  }
  const pool = job.refreshTokens
  if (pool === undefined) {
    return {
      ...base,
      url: job.url + (job.path ?? ''),
      method: job.method ?? 'GET',
      ...(job.headers ? { headers: job.headers } : {}),
      ...(job.body === undefined ? {} : { body: job.body }),
    }
  }
  const grant = job.refreshGrant
  const encode = grant
    ? (token: string) => new URLSearchParams({ ...grant.form, refresh_token: token }).toString()
    : (token: string) => JSON.stringify({ refresh_token: token })
  return {
    ...base,
    requests: [
      {
        method: 'POST',
        path: grant?.path ?? '/v1/user/auth/refresh',
        headers: {
          'content-type': grant ? 'application/x-www-form-urlencoded' : 'application/json',
          ...grant?.headers,
        },
        setupRequest: (req) => ({ ...req, body: encode(pool.shift() ?? '') }),
        onResponse: (status, body) => {
          if (status === 200)
            pool.push((JSON.parse(body) as { refresh_token: string }).refresh_token)
        },
      },
    ],
  }
}

const job = JSON.parse(await readStdin()) as LoadJob
const result = await new Promise<autocannon.Result>((resolve, reject) => {
  autocannon(options(job), (err, res) => (err ? reject(err) : resolve(res)))
})
const output: LoadResult = {
  rate: result.requests.average,
  p99: result.latency.p99,
  errors: result.non2xx + result.errors + result.timeouts,
  ...(job.refreshTokens ? { refreshTokens: job.refreshTokens } : {}),
}
process.stdout.write(JSON.stringify(output))
