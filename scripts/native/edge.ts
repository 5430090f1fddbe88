import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { readConfig } from '../../services/shared/src/config.js';
import { edgeEnvironmentSchema, writeEdgeConfig } from '../edge/render.js';
import { findBinary } from './binaries.js';
import { launch, waitUntilReady, assertPortFree, type NativeProcess } from './services.js';

export interface EdgeInstance extends NativeProcess {
  url: string;
  configFile: string;
  accessLog: string;
  errorLog: string;
}

export interface EdgeOptions {
  /** The edge's settings as environment variables (see scripts/edge/render.ts). */
  env: Record<string, string | undefined>;
  runtimeDir: string;
  detached: boolean;
}

/** Renders the edge config for Debian's nginx into runtimeDir, checks it with `nginx -t`, and starts nginx. */
export async function startEdge({ env, runtimeDir, detached }: EdgeOptions): Promise<EdgeInstance> {
  const nginx = findBinary('nginx');
  mkdirSync(runtimeDir, { recursive: true });
  // Workers run unprivileged when we are root; they need to reach their temp directories.
  chmodSync(runtimeDir, 0o755);
  const settings = readConfig(edgeEnvironmentSchema, { ...env, EDGE_TARGET: 'debian', EDGE_RUNTIME_DIR: runtimeDir });
  const configFile = path.join(runtimeDir, 'nginx.conf');
  writeEdgeConfig(settings, configFile);
  const check = spawnSync(nginx, ['-t', '-q', '-p', runtimeDir, '-c', configFile], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`the rendered edge config does not pass nginx -t: ${check.stderr}`);

  await assertPortFree(settings.EDGE_PORT, 'edge');
  const errorLog = path.join(runtimeDir, 'error.log');
  const processInfo = launch('edge', nginx, ['-p', runtimeDir, '-c', configFile], {
    port: settings.EDGE_PORT,
    dataDir: runtimeDir,
    logFile: path.join(runtimeDir, 'nginx.out'),
    detached,
  });
  const url = `http://127.0.0.1:${settings.EDGE_PORT}`;
  await waitUntilReady('edge', processInfo.child, errorLog, async () => {
    const response = await fetch(`${url}/healthz`);
    if (!response.ok) throw new Error(`healthz answered ${response.status}`);
  });
  return { ...processInfo, url, configFile, accessLog: path.join(runtimeDir, 'access.log'), errorLog };
}
