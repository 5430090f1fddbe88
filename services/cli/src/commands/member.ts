import { Argument, Command } from 'commander';
import { listMembers, addMember, removeMember, updateMember, type MemberRow, type Role } from '../members.js';
import { ROLES } from '../../../shared/src/roles.js';
import { printJson, printTable, say, type JsonOption } from '../output.js';

const roleArgument = (required: boolean) =>
  new Argument(required ? '<role>' : '[role]', 'owner, admin, member or guest').choices(ROLES);

export function memberCommand(): Command {
  const member = new Command('member').description("manage a tenant's members (the user limit and last-owner rule are the database's)");

  member
    .command('add')
    .description('add a user to a tenant')
    .argument('<tenant>', 'slug or id')
    .argument('<user>', 'user id or email')
    .addArgument(roleArgument(false).default('member'))
    .option('--json', 'print JSON')
    .action(async (tenant: string, user: string, role: Role, options: JsonOption) => {
      const row = await addMember(tenant, user, role);
      if (options.json) return printJson(row);
      say(`added ${row.email} to ${tenant} as ${row.role}`);
    });

  member
    .command('list')
    .description("list a tenant's members")
    .argument('<tenant>', 'slug or id')
    .option('--json', 'print JSON')
    .action(async (tenant: string, options: JsonOption) => {
      const rows = await listMembers(tenant);
      if (options.json) return printJson(rows);
      printTable<MemberRow>(
        [
          ['email', (row) => row.email],
          ['name', (row) => row.display_name],
          ['role', (row) => row.role],
          ['joined', (row) => row.joined_at],
          ['user id', (row) => row.user_id],
        ],
        rows,
        `tenant ${tenant} has no members — add one with \`tenantry member add ${tenant} EMAIL owner\``,
      );
    });

  member
    .command('update')
    .description("change a member's role")
    .argument('<tenant>', 'slug or id')
    .argument('<user>', 'user id or email')
    .addArgument(roleArgument(true))
    .option('--json', 'print JSON')
    .action(async (tenant: string, user: string, role: Role, options: JsonOption) => {
      const row = await updateMember(tenant, user, role);
      if (options.json) return printJson(row);
      say(`${row.email} is now ${row.role} of ${tenant}`);
    });

  member
    .command('remove')
    .description('remove a member from a tenant')
    .argument('<tenant>', 'slug or id')
    .argument('<user>', 'user id or email')
    .action(async (tenant: string, user: string) => {
      await removeMember(tenant, user);
      say(`removed ${user} from ${tenant}`);
    });

  return member;
}
