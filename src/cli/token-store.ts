import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import { chmod, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises'
import { homedir } from 'node:os'
import { isAbsolute, join } from 'node:path'
import lockfile from 'proper-lockfile'

/**
 * Where the client commands keep their tokens: `$XDG_CONFIG_HOME/tessera/credentials.json`
 * (`~/.config/tessera/...` when XDG_CONFIG_HOME is unset or not absolute, as the XDG spec says).
 * The directory is 0700 and the file 0600; every write replaces the file atomically (a temporary
 * file created 0600 in the same directory, then renamed), so a crash never leaves a half-written
 * file and there is no moment where the tokens are readable by others. One entry per server URL,
 * so several Tessera servers can be used side by side.
 */

export interface StoredCredentials {
  /** The server the tokens belong to (the key of the entry). */
  url: string
  access_token: string
  refresh_token: string
  /** RFC 3339, computed from the local clock and `expires_in`. */
  access_expires_at: string
  refresh_expires_at: string
}

interface CredentialsFile {
  version: 1
  servers: Record<string, StoredCredentials>
}

/** The credentials file is unusable (bad JSON, wrong shape) or the lock cannot be taken. */
export class TokenStoreError extends Error {
  override name = 'TokenStoreError'
}

/**
 * The cross-process lock on the credentials file (proper-lockfile: a directory created with
 * mkdir, which is atomic on local and network file systems alike, whose mtime its holder renews
 * every `LOCK_UPDATE_MS`). A lock not renewed for `LOCK_STALE_MS` was left by a process that died
 * (kill -9, a crash, a lost NFS client) and is taken over; Ctrl-C and normal exits remove it at
 * once. A refresh holds it for one HTTP round trip (at most `REQUEST_TIMEOUT_MS` of client.ts,
 * 30 s), so a waiter retries for about 40 s before giving up.
 */
const LOCK_STALE_MS = 10_000
const LOCK_UPDATE_MS = 2_000
const LOCK_RETRIES = { retries: 160, factor: 1.5, minTimeout: 25, maxTimeout: 250, randomize: true }

/** proper-lockfile's file system, creating the lock directory 0700 like the one it sits in. */
const LOCK_FS = {
  ...fs,
  mkdir: (path: string, callback: (error: NodeJS.ErrnoException | null) => void) =>
    fs.mkdir(path, { mode: 0o700 }, callback),
}

export function configDirectory(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME
  const base = xdg !== undefined && xdg !== '' && isAbsolute(xdg) ? xdg : join(homedir(), '.config')
  return join(base, 'tessera')
}

/** Reads and changes the credentials of one server; `get` is read-only and needs no lock. */
export interface Transaction {
  get(url: string): Promise<StoredCredentials | undefined>
  put(entry: StoredCredentials): Promise<void>
  remove(url: string): Promise<boolean>
}

export class TokenStore {
  readonly file: string
  private readonly lockFile: string

  constructor(readonly dir: string) {
    this.file = join(dir, 'credentials.json')
    this.lockFile = join(dir, 'credentials.json.lock')
  }

  static fromEnv(env: NodeJS.ProcessEnv = process.env): TokenStore {
    return new TokenStore(configDirectory(env))
  }

  async get(url: string): Promise<StoredCredentials | undefined> {
    const data = await this.read()
    return Object.hasOwn(data.servers, url) ? data.servers[url] : undefined
  }

  /**
   * Runs `fn` holding an exclusive lock on the file across processes (see `LOCK_STALE_MS`).
   * Refreshing happens under this lock and re-reads the file first, so N commands sharing one
   * file refresh once and never both present the same refresh token (README, "Command line").
   * Writes made under a lock that was lost (not renewed in time, taken over) are refused.
   */
  async locked<T>(fn: (tx: Transaction) => Promise<T>): Promise<T> {
    await this.ensureDirectory()
    let lost: Error | undefined
    let release: () => Promise<void>
    try {
      release = await lockfile.lock(this.file, {
        lockfilePath: this.lockFile,
        // The credentials file need not exist yet (the first login).
        realpath: false,
        stale: LOCK_STALE_MS,
        update: LOCK_UPDATE_MS,
        retries: LOCK_RETRIES,
        fs: LOCK_FS,
        onCompromised: (error) => {
          lost = error
        },
      })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') throw error
      throw new TokenStoreError(
        `${this.lockFile} is held by another tessera command; try again (or delete it)`,
      )
    }
    const held = () => {
      if (lost !== undefined) {
        throw new TokenStoreError(`the lock ${this.lockFile} was lost; try again`)
      }
    }
    try {
      return await fn({
        get: (url) => this.get(url),
        put: async (entry) => {
          const data = await this.read()
          data.servers[entry.url] = entry
          held()
          await this.write(data)
        },
        remove: async (url) => {
          const data = await this.read()
          if (!Object.hasOwn(data.servers, url)) return false
          delete data.servers[url]
          held()
          await this.write(data)
          return true
        },
      })
    } finally {
      await release().catch(() => {})
    }
  }

  private async read(): Promise<CredentialsFile> {
    let text: string
    try {
      text = await readFile(this.file, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, servers: {} }
      throw error
    }
    let data: unknown
    try {
      data = JSON.parse(text)
    } catch {
      throw new TokenStoreError(`${this.file} is not valid JSON; delete it and log in again`)
    }
    if (!isCredentialsFile(data)) {
      throw new TokenStoreError(
        `${this.file} is not a Tessera credentials file; delete it and log in again`,
      )
    }
    return data
  }

  private async write(data: CredentialsFile): Promise<void> {
    const temp = join(this.dir, `.credentials.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
    // 'wx': never follow or reuse an existing file; 0600 from the first byte on.
    const handle = await open(temp, 'wx', 0o600)
    try {
      try {
        await handle.writeFile(`${JSON.stringify(data, null, 2)}\n`, 'utf8')
        await handle.sync()
      } finally {
        await handle.close()
      }
      await rename(temp, this.file)
    } catch (error) {
      await unlink(temp).catch(() => {})
      throw error
    }
  }

  private async ensureDirectory(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    // An existing directory keeps its mode through mkdir: tighten it.
    if (((await stat(this.dir)).mode & 0o077) !== 0) await chmod(this.dir, 0o700)
  }
}

function isCredentialsFile(data: unknown): data is CredentialsFile {
  if (typeof data !== 'object' || data === null) return false
  const servers = (data as { servers?: unknown }).servers
  if (typeof servers !== 'object' || servers === null || Array.isArray(servers)) return false
  return Object.values(servers).every(
    (entry: unknown) =>
      typeof entry === 'object' &&
      entry !== null &&
      ['url', 'access_token', 'refresh_token', 'access_expires_at', 'refresh_expires_at'].every(
        (key) => typeof (entry as Record<string, unknown>)[key] === 'string',
      ),
  )
}
