import { type Logger, pino } from 'pino'

export type { Logger }

/**
 * Structured JSON logs. Request logs carry method, path, status and the request id, never
 * bodies; the redaction list is a second line of defence for headers that hold credentials.
 */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'tessera' },
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'req.headers["x-service-secret"]',
        '*.password',
        '*.refresh_token',
        '*.access_token',
      ],
      censor: '[redacted]',
    },
  })
}
