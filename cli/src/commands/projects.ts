import { parseArgs, type OptionSpecs } from '../args.js';
import { clientConfig } from '../clientConfig.js';
import type { Command } from '../command.js';
import type { Context } from '../context.js';
import { UsageError } from '../errors.js';
import { formatAge, formatTable } from '../format.js';
import { TenancyApi, type ProjectToken } from './tenancyApi.js';
import { exactly, projectTable, roleOption } from './teams.js';

const OPTIONS = {
  team: { type: 'string' },
  role: { type: 'string' },
  expires: { type: 'string' },
  name: { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies OptionSpecs;

const USAGE = `Usage: paddock projects [ls] [--team T] [--json]
       paddock projects create --team T NAME
       paddock projects show ID [--json]
       paddock projects token create PROJECT --role member|viewer [--expires 30d] [--name NAME]
       paddock projects token ls PROJECT [--json]
       paddock projects token revoke PROJECT TOKEN

Every execution belongs to a project of a team (paddock run --project ID); your role in the team is
your role in its projects. Every user has a personal project, where runs go unless told otherwise.

  ls             the projects you see, with your role in each (--team: one team's)
  create         make a project in team T (team admins)
  show ID        one project
  token create   a token for automation that acts in PROJECT only, with its role (member: runs and
                 cancels; viewer: reads); printed once, on stdout. Project admins make them
  token ls       a project's tokens (never the tokens themselves)
  token revoke   end a token at once

Options:
  --team T        a team's id
  --role ROLE     a token's role: member or viewer
  --expires AGE   a token's lifetime: 90m, 12h, 30d (default: until revoked)
  --name NAME     what a token is for (default "token")
  --json          print what the API answered, as JSON
  -h, --help      show this help`;

const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `30d`, `12h`, `90m`, `3600s` in seconds. */
export function parseExpiry(value: string): number {
  const m = /^([1-9][0-9]{0,6})([smhd])$/.exec(value.trim());
  if (!m) throw new UsageError(`--expires takes a number and a unit (s, m, h or d), such as 30d or 12h, got "${value}"`, 'projects');
  return Number(m[1]) * UNIT_SECONDS[m[2]!]!;
}

function tokenTable(tokens: readonly ProjectToken[], now: Date): string {
  return formatTable(
    ['ID', 'NAME', 'ROLE', 'CREATED BY', 'CREATED', 'EXPIRES'],
    tokens.map((t) => [t.id, t.name, t.role, t.createdBy, formatAge(t.createdAt, now), t.expiresAt === null ? 'never' : expiry(t.expiresAt, now)]),
  );
}

function expiry(iso: string, now: Date): string {
  return Date.parse(iso) <= now.getTime() ? `${iso} (expired)` : iso;
}

function json(ctx: Context, value: unknown): number {
  ctx.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  return 0;
}

export const projects: Command = {
  name: 'projects',
  summary: "list, make and show projects; make, list and revoke a project's tokens",
  usage: USAGE,

  async run(ctx, argv) {
    const args = parseArgs(argv, OPTIONS, { command: 'projects' });
    if (args.help) {
      ctx.stdout.write(`${this.usage}\n`);
      return 0;
    }
    if (args.rest.length > 0) throw new UsageError(`unexpected "${args.rest.join(' ')}"`, 'projects');
    const [sub = 'ls', ...positionals] = args.positionals;
    const { team, role, expires, name } = args.options;
    const tokenCreate = sub === 'token' && positionals[0] === 'create';
    if ((role !== undefined || expires !== undefined || name !== undefined) && !tokenCreate) throw new UsageError('--role, --expires and --name are for token create', 'projects');
    if (team !== undefined && sub !== 'ls' && sub !== 'create') throw new UsageError(`--team is for ls and create, not ${sub}`, 'projects');
    const api = new TenancyApi(await clientConfig(ctx.env));
    const now = new Date();
    switch (sub) {
      case 'ls': {
        exactly(positionals, [], 'projects', sub);
        const list = await api.projects(team);
        if (args.options.json) return json(ctx, list);
        ctx.stdout.write(`${projectTable(list, now)}\n`);
        return 0;
      }
      case 'create': {
        const [projectName] = exactly(positionals, ['NAME'], 'projects', sub);
        if (team === undefined) throw new UsageError('give the team with --team T (paddock teams ls lists yours)', 'projects');
        const project = await api.createProject(team, projectName!);
        if (args.options.json) return json(ctx, project);
        ctx.stdout.write(`${project.id}\n`);
        ctx.stderr.write(`made project "${project.name}" in team ${project.teamId}\n`);
        return 0;
      }
      case 'show': {
        const [id] = exactly(positionals, ['ID'], 'projects', sub);
        const p = await api.project(id!);
        if (args.options.json) return json(ctx, p);
        ctx.stdout.write(`Project  ${p.id}  ${p.name}${p.personal ? ' (personal)' : ''}\nTeam     ${p.teamId}\nYou are  ${p.role}\nCreated  ${p.createdAt} (${formatAge(p.createdAt, now)})\n`);
        return 0;
      }
      case 'token':
        return token(ctx, api, positionals, { role, expires, name, json: args.options.json }, now);
      default:
        throw new UsageError(`unknown subcommand "${sub}": use ls, create, show or token`, 'projects');
    }
  },
};

async function token(
  ctx: Context,
  api: TenancyApi,
  positionals: readonly string[],
  opts: { role: string | undefined; expires: string | undefined; name: string | undefined; json: boolean },
  now: Date,
): Promise<number> {
  const [action, ...rest] = positionals;
  switch (action) {
    case 'create': {
      const [project] = exactly(rest, ['PROJECT'], 'projects', 'token create');
      const role = roleOption(opts.role, 'projects', ['member', 'viewer']) as 'member' | 'viewer';
      const made = await api.createToken(project!, {
        role,
        ...(opts.name === undefined ? {} : { name: opts.name }),
        ...(opts.expires === undefined ? {} : { expiresInSeconds: parseExpiry(opts.expires) }),
      });
      if (opts.json) return json(ctx, made);
      // Only the token on stdout, so that `TOKEN=$(paddock projects token create …)` works.
      ctx.stdout.write(`${made.token}\n`);
      ctx.stderr.write(
        `token ${made.id} (${made.role}) for project ${made.projectId}, ${made.expiresAt === null ? 'until revoked' : `until ${made.expiresAt}`}: ` +
          'it is shown only now; send it as PADDOCK_TOKEN\n',
      );
      return 0;
    }
    case 'ls': {
      const [project] = exactly(rest, ['PROJECT'], 'projects', 'token ls');
      const list = await api.tokens(project!);
      if (opts.json) return json(ctx, list);
      if (list.length === 0) ctx.stderr.write(`project ${project} has no tokens\n`);
      else ctx.stdout.write(`${tokenTable(list, now)}\n`);
      return 0;
    }
    case 'revoke': {
      const [project, tokenId] = exactly(rest, ['PROJECT', 'TOKEN'], 'projects', 'token revoke');
      await api.revokeToken(project!, tokenId!);
      ctx.stderr.write(`revoked token ${tokenId} of project ${project}\n`);
      return 0;
    }
    default:
      throw new UsageError(action === undefined ? 'token needs create, ls or revoke' : `unknown token action "${action}": use create, ls or revoke`, 'projects');
  }
}
