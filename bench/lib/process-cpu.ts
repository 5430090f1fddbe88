import { readFile } from 'node:fs/promises';

const CLOCK_TICKS_PER_SECOND = 100;

/**
 * CPU seconds (user + system) used so far by the children of `parentPid` (an nginx master's
 * workers), from /proc. Unlike requests/s, this barely moves when other work shares the
 * machine, so it shows what a change costs per request on a busy one.
 */
export async function childrenCpuSeconds(parentPid: number): Promise<number> {
  const children = (await readFile(`/proc/${parentPid}/task/${parentPid}/children`, 'utf8')).trim().split(/\s+/).filter(Boolean);
  let ticks = 0;
  for (const child of children) {
    const stat = await readFile(`/proc/${child}/stat`, 'utf8').catch(() => '');
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
  }
  return ticks / CLOCK_TICKS_PER_SECOND;
}
