export interface ThroughputOptions {
  /** How many loops run at once, each awaiting its own operation (one per connection). */
  workers: number;
  durationMs: number;
  /** A hard cap per worker, so a round ends even if operations are far faster than expected. */
  maxIterationsPerWorker: number;
  operation: (worker: number) => Promise<unknown>;
}

/**
 * Operations per second over one round. The clock stops when the last in-flight operation
 * returns, not at the deadline, so the operations that overran are paid for.
 */
export async function measureThroughput({ workers, durationMs, maxIterationsPerWorker, operation }: ThroughputOptions): Promise<number> {
  const started = performance.now();
  const deadline = started + durationMs;
  const counts = await Promise.all(
    Array.from({ length: workers }, async (_, worker) => {
      let done = 0;
      while (done < maxIterationsPerWorker && performance.now() < deadline) {
        await operation(worker);
        done += 1;
      }
      return done;
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return counts.reduce((sum, count) => sum + count, 0) / seconds;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export const pickRandom = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;
