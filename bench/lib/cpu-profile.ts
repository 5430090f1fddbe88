import { Session } from 'node:inspector/promises';
import path from 'node:path';

/** A V8 CPU profile as the inspector returns it. */
export type CpuProfile = { nodes: Array<{ id: number; callFrame: { functionName: string; url: string }; children?: number[] }>; samples: number[]; timeDeltas: number[] };

/** Starts sampling this process's CPU (every 200 µs); stop() returns the profile. */
export async function startCpuProfile(): Promise<{ stop(): Promise<CpuProfile> }> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  return {
    async stop() {
      const { profile } = (await session.post('Profiler.stop')) as unknown as { profile: CpuProfile };
      session.disconnect();
      return profile;
    },
  };
}

/** Self time per package (node_modules/<name>, our code by its first three path segments, Node's internals, GC, idle), and the heaviest functions. */
export function printCpuProfile(title: string, profile: CpuProfile, count = 14): void {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMs = new Map<number, number>();
  profile.samples.forEach((id, index) => selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0) / 1000));
  const packageOf = (url: string, name: string) => {
    if (!url) return name.startsWith('(') ? name : '(native)';
    const module = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
    if (module) return module[1]!;
    if (url.startsWith('node:')) return 'node:' + url.slice(5).split('/')[0];
    return path.relative(path.resolve(import.meta.dirname, '../..'), url.replace(/^file:\/\//, '')).split('/').slice(0, 3).join('/');
  };
  const byPackage = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const [id, ms] of selfMs) {
    const { functionName, url } = byId.get(id)!.callFrame;
    const owner = packageOf(url, functionName);
    byPackage.set(owner, (byPackage.get(owner) ?? 0) + ms);
    const key = `${functionName || '(anonymous)'} ${owner}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + ms);
  }
  const total = [...selfMs.values()].reduce((sum, ms) => sum + ms, 0);
  const top = (entries: Map<string, number>) =>
    [...entries].sort((a, b) => b[1] - a[1]).slice(0, count).map(([name, ms]) => `  ${((ms / total) * 100).toFixed(1).padStart(5)} %  ${name}`).join('\n');
  console.log(`\n${title} (self time, ${total.toFixed(0)} ms sampled):\n${top(byPackage)}\nheaviest functions:\n${top(byFunction)}`);
}
