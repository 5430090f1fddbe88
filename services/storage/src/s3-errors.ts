import { fail } from '../../shared/src/errors/catalog.js';
import { HttpError } from '../../shared/src/http/errors.js';
import type { Logger } from '../../shared/src/logger.js';

/**
 * Runs a call to the S3 server; whatever goes wrong there (no answer, an error answer)
 * becomes 503 storage_unavailable, logged with its cause: the client can only retry, and
 * the operators need the S3 server's own words.
 */
export async function onS3<T>(log: Logger, what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof HttpError) throw error;
    log.error({ err: error, s3: what }, 'S3 call failed');
    throw fail('storage_unavailable');
  }
}
