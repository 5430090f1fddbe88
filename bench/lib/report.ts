import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** bench/results/ is git-ignored: results are per machine, never committed. */
export const RESULTS_DIR = path.resolve(import.meta.dirname, '../results');

/** One measurement of the thing under test (candidate) against a reference (baseline). */
export interface ComparisonCase {
  case: string;
  baseline: number;
  candidate: number;
  unit: string;
  higherIsBetter: boolean;
  /**
   * The acceptable candidate ÷ baseline: a minimum when higher is better, a maximum
   * when lower is better. Without one the case is reported but never "missed".
   */
  goal?: number;
}

export interface GoalVerdict {
  case: string;
  ratio: number;
  goal: number;
  met: boolean;
}

export const ratioOf = (entry: ComparisonCase): number => entry.candidate / entry.baseline;

export function verdictsOf(cases: readonly ComparisonCase[]): GoalVerdict[] {
  return cases
    .filter((entry): entry is ComparisonCase & { goal: number } => entry.goal !== undefined)
    .map((entry) => {
      const ratio = ratioOf(entry);
      const met = entry.higherIsBetter ? ratio >= entry.goal : ratio <= entry.goal;
      return { case: entry.case, ratio, goal: entry.goal, met };
    });
}

const formatValue = (value: number): string =>
  value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toPrecision(3);

/** Plain aligned columns, so the output reads the same in a terminal and in a CI log. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  // Text columns align left, numbers right; the first column is the only text one here.
  const line = (cells: readonly string[]) =>
    cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ');
  return [line(header), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(line)].join('\n');
}

/** Prints the comparison table and returns the goal verdicts. */
export function printComparison(title: string, cases: readonly ComparisonCase[]): GoalVerdict[] {
  const verdicts = verdictsOf(cases);
  const units = new Set(cases.map((entry) => entry.unit));
  const unit = units.size === 1 ? ` (${[...units][0]})` : '';
  const rows = cases.map((entry) => {
    const verdict = verdicts.find((candidate) => candidate.case === entry.case);
    const suffix = units.size === 1 ? '' : ` ${entry.unit}`;
    return [
      entry.case,
      formatValue(entry.baseline) + suffix,
      formatValue(entry.candidate) + suffix,
      ratioOf(entry).toFixed(3),
      verdict ? `${entry.higherIsBetter ? '>=' : '<='} ${verdict.goal.toFixed(2)}` : '-',
      verdict ? (verdict.met ? 'yes' : 'NO') : '-',
    ];
  });
  console.log(`\n${title}\n`);
  console.log(formatTable(['case', `baseline${unit}`, `candidate${unit}`, 'ratio', 'goal', 'met?'], rows));
  const missed = verdicts.filter((verdict) => !verdict.met);
  console.log(
    missed.length === 0
      ? `\nall ${verdicts.length} goals met`
      : `\nMISSED ${missed.length} of ${verdicts.length} goals: ${missed
          .map((verdict) => `${verdict.case} (ratio ${verdict.ratio.toFixed(3)}, goal ${verdict.goal.toFixed(2)})`)
          .join('; ')}`,
  );
  return verdicts;
}

/**
 * Writes bench/results/<name>.json as {"cases":[…]} — the shape every benchmark shares so
 * results can be compared across runs — plus any extra top-level keys. Returns the path.
 */
export async function writeResults(name: string, cases: readonly ComparisonCase[], extra: Record<string, unknown> = {}): Promise<string> {
  const round = (value: number, digits: number) => Number(value.toFixed(digits));
  const document = {
    cases: cases.map((entry) => ({
      case: entry.case,
      baseline: round(entry.baseline, 2),
      candidate: round(entry.candidate, 2),
      unit: entry.unit,
      ratio: round(ratioOf(entry), 4),
      higher_is_better: entry.higherIsBetter,
    })),
    goals: verdictsOf(cases).map((verdict) => ({ ...verdict, ratio: round(verdict.ratio, 4) })),
    ...extra,
  };
  await mkdir(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${name}.json`);
  await writeFile(file, `${JSON.stringify(document, null, 2)}\n`);
  return file;
}
