import { adminPool } from './context.js';
import { CliError } from './errors.js';

/** Plans live in the database (plans table), so --plan is checked against it, as --status is against its choices. */
export async function requireKnownPlan(plan: string): Promise<void> {
  const { rows } = await adminPool().query<{ id: string }>('SELECT id FROM plans ORDER BY sort_order, id');
  const known = rows.map((row) => row.id);
  if (!known.includes(plan)) {
    throw new CliError(`option '--plan <plan>' argument '${plan}' is invalid. Allowed choices are ${known.join(', ')}.`, 2);
  }
}
