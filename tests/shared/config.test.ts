import { describe, expect, test } from 'vitest';
import { z } from 'zod';
import { ConfigError, postgresUrl, readConfig } from '../../services/shared/src/config.js';

const schema = z.object({
  DATABASE_URL: postgresUrl,
  PORT: z.coerce.number().int().min(1).max(65535).default(3000),
});

describe('readConfig', () => {
  test('parses and applies defaults', () => {
    expect(readConfig(schema, { DATABASE_URL: 'postgresql://u:p@localhost:5432/db' })).toEqual({
      DATABASE_URL: 'postgresql://u:p@localhost:5432/db',
      PORT: 3000,
    });
  });

  test('names every missing or malformed variable at once', () => {
    let error: unknown;
    try {
      readConfig(schema, { PORT: 'eighty' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^DATABASE_URL is required/);
    expect(problems[1]).toMatch(/^PORT is invalid/);
  });

  test('refuses a URL of another scheme', () => {
    expect(() => readConfig(schema, { DATABASE_URL: 'mysql://localhost/db' })).toThrow(/DATABASE_URL is invalid: must be a postgres/);
  });
});
