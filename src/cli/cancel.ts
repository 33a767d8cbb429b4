import { CANCELLED_EXIT_CODE, CliFailure } from './failure.js'

/**
 * Ctrl-C during a command that waits (for the browser, for an approval, for a verification): the
 * wait is aborted, the listener and requests are closed, and the command exits 130 with one line
 * (`<what> cancelled`) instead of a stack trace. Only while `run` runs; afterwards SIGINT ends the
 * process as usual.
 */
export async function cancellableOnInterrupt<T>(
  run: (signal: AbortSignal) => Promise<T>,
  what = 'login',
): Promise<T> {
  const controller = new AbortController()
  const interrupt = () => controller.abort()
  process.once('SIGINT', interrupt)
  try {
    return await run(controller.signal)
  } catch (error) {
    if (controller.signal.aborted) throw cancelled(what)
    throw error
  } finally {
    process.off('SIGINT', interrupt)
  }
}

export function cancelled(what = 'login'): CliFailure {
  return new CliFailure(`${what} cancelled`, CANCELLED_EXIT_CODE)
}

/** Waits `ms`, or rejects at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(cancelled())
      return
    }
    const onAbort = () => {
      clearTimeout(timer)
      reject(cancelled())
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
