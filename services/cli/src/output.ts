/** Printing, kept apart from the domain modules: human tables by default, JSON on --json. */

export interface JsonOption {
  json?: boolean;
}

const toJsonValue = (value: unknown): unknown => (value instanceof Date ? value.toISOString() : value);

/** Stable JSON: snake_case fields as the modules return them, dates as ISO strings. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, (_key, item: unknown) => toJsonValue(item), 2)}\n`);
}

export function cell(value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (value instanceof Date) return value.toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** A plain aligned table; an empty list prints a hint instead of a bare header. */
export function printTable<T>(columns: Array<[header: string, get: (row: T) => unknown]>, rows: T[], empty = 'nothing to show'): void {
  if (rows.length === 0) {
    process.stdout.write(`${empty}\n`);
    return;
  }
  const cells = rows.map((row) => columns.map(([, get]) => cell(get(row))));
  const widths = columns.map(([header], index) => Math.max(header.length, ...cells.map((line) => line[index]!.length)));
  const line = (values: string[]) =>
    values
      .map((value, index) => (index === values.length - 1 ? value : value.padEnd(widths[index]!)))
      .join('  ')
      .trimEnd();
  process.stdout.write(`${line(columns.map(([header]) => header.toUpperCase()))}\n`);
  for (const values of cells) process.stdout.write(`${line(values)}\n`);
}

/** Key: value lines for one object. */
export function printFields(fields: Array<[label: string, value: unknown]>): void {
  const width = Math.max(...fields.map(([label]) => label.length));
  for (const [label, value] of fields) process.stdout.write(`${`${label}:`.padEnd(width + 2)}${cell(value)}\n`);
}

export function say(message: string): void {
  process.stdout.write(`${message}\n`);
}
