import { accessSync, constants, readdirSync } from 'node:fs';
import path from 'node:path';

export const INSTALL_HINT = 'run `sudo bash scripts/install-native-deps.sh` (or start a Docker engine, or set the service URLs)';

/** Where scripts/install-native-deps.sh leaves the Go-built servers. */
export const cacheBinDir = (): string => path.join(process.env.TENANTRY_CACHE_DIR ?? '/var/cache/tenantry', 'bin');

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function postgresBinDirs(): string[] {
  const root = '/usr/lib/postgresql';
  try {
    return readdirSync(root)
      .filter((version) => /^\d+$/.test(version))
      .sort((a, b) => Number(b) - Number(a))
      .map((version) => path.join(root, version, 'bin'));
  } catch {
    return [];
  }
}

export class MissingBinaryError extends Error {
  constructor(name: string) {
    super(`${name} is not installed: ${INSTALL_HINT}`);
    this.name = 'MissingBinaryError';
  }
}

/** Finds a server binary: the install script's cache, Debian's PostgreSQL directories, then PATH. */
export function findBinary(name: string): string {
  const candidates = [
    cacheBinDir(),
    ...(name === 'postgres' || name === 'initdb' ? postgresBinDirs() : []),
    ...(process.env.PATH ?? '').split(path.delimiter),
    '/usr/sbin',
    '/usr/local/sbin',
  ];
  for (const directory of candidates) {
    if (!directory) continue;
    const file = path.join(directory, name);
    if (isExecutable(file)) return file;
  }
  throw new MissingBinaryError(name);
}
