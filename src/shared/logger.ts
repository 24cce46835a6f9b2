import { type Logger, pino } from 'pino';

/** Structured JSON logs; tests and CLIs stay quiet unless LOG_LEVEL says otherwise. */
export const logger: Logger = pino({
  level: process.env.LOG_LEVEL ?? (process.env.NODE_ENV === 'test' ? 'silent' : 'info'),
  base: { service: 'harmon' },
});

export type { Logger };
