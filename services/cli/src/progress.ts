import cliProgress from 'cli-progress';

export interface Progress {
  start(total: number, label: string): void;
  increment(by?: number): void;
  stop(): void;
}

const quiet: Progress = { start() {}, increment() {}, stop() {} };

/** A progress bar on stderr when stdout is a terminal; nothing at all otherwise. */
export function progress(): Progress {
  if (!process.stdout.isTTY) return quiet;
  const bar = new cliProgress.SingleBar(
    { format: '{label} [{bar}] {value}/{total}', hideCursor: true, clearOnComplete: true, stream: process.stderr },
    cliProgress.Presets.shades_classic,
  );
  let running = false;
  return {
    start(total, label) {
      if (running) bar.stop();
      bar.start(Math.max(total, 1), 0, { label });
      running = true;
    },
    increment(by = 1) {
      if (running) bar.increment(by);
    },
    stop() {
      if (running) bar.stop();
      running = false;
    },
  };
}
