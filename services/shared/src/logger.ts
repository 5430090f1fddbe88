import { pino, type Logger } from 'pino';

export type { Logger };

/** One logger shape for every process: JSON lines, secrets redacted wherever they appear. */
export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: [
        'password',
        '*.password',
        'token',
        '*.token',
        'authorization',
        '*.authorization',
        'req.headers.authorization',
        'req.headers.cookie',
        'connectionString',
        '*.connectionString',
      ],
      censor: '[redacted]',
    },
  });
}
