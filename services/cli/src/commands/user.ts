import { text } from 'node:stream/consumers';
import { Command } from 'commander';
import { CliError } from '../errors.js';
import { printJson, printTable, say, type JsonOption } from '../output.js';
import { createUser, listUsers, setStaff, type UserRow } from '../users.js';

export function userCommand(): Command {
  const user = new Command('user').description('platform users (identities that can join tenants)');

  user
    .command('create')
    .description("create a user; with --password-stdin, read the password from stdin (the auth service's policy: 10–256 characters; hashed with its argon2id cost)")
    .argument('<email>', 'email address')
    .option('--name <name>', 'display name')
    .option('--password-stdin', 'read the password from stdin')
    .option('--json', 'print JSON')
    .action(async (email: string, options: { name?: string; passwordStdin?: boolean } & JsonOption) => {
      let password: string | undefined;
      if (options.passwordStdin) {
        password = (await text(process.stdin)).replace(/\r?\n$/, '');
        if (password.length === 0) throw new CliError('no password on stdin — pipe one in, e.g. `printf %s "$PW" | tenantry user create EMAIL --password-stdin`');
      }
      const row = await createUser({ email, password, name: options.name });
      if (options.json) return printJson(row);
      say(`created user ${row.email} (${row.id})${row.has_password ? ' with a password' : ''}`);
    });

  user
    .command('list')
    .description('list users')
    .option('--email <text>', 'only emails containing this')
    .option('--json', 'print JSON')
    .action(async (options: { email?: string } & JsonOption) => {
      const rows = await listUsers(options);
      if (options.json) return printJson(rows);
      printTable<UserRow>(
        [
          ['email', (row) => row.email],
          ['name', (row) => row.display_name],
          ['password', (row) => (row.has_password ? 'yes' : 'no')],
          ['staff', (row) => (row.is_staff ? 'yes' : '')],
          ['created', (row) => row.created_at],
          ['id', (row) => row.id],
        ],
        rows,
        'no users — create one with `tenantry user create EMAIL`',
      );
    });

  const staff = user.command('staff').description('platform staff: users who may list every tenant (audited, with a reason)');
  for (const [verb, isStaff] of [
    ['grant', true],
    ['revoke', false],
  ] as const) {
    staff
      .command(verb)
      .description(isStaff ? 'make a user platform staff' : "remove a user's platform staff rights")
      .argument('<user>', 'email or id')
      .requiredOption('--reason <text>', 'why (kept in the audit log)')
      .option('--json', 'print JSON')
      .action(async (reference: string, options: { reason: string } & JsonOption) => {
        const { user: row, changed } = await setStaff(reference, isStaff, options.reason);
        if (options.json) return printJson({ ...row, changed });
        if (!changed) return say(`${row.email} ${isStaff ? 'is already' : 'is not'} staff: nothing changed`);
        say(`${isStaff ? 'granted' : 'revoked'} staff ${isStaff ? 'to' : 'from'} ${row.email} (audited: users.staff.${verb})`);
      });
  }

  return user;
}
