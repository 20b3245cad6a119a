import { parseArgs, type OptionSpecs } from '../args.js';
import { clientConfig } from '../clientConfig.js';
import type { Command } from '../command.js';
import type { Context } from '../context.js';
import { UsageError } from '../errors.js';
import { formatAge, formatTable } from '../format.js';
import { ROLES, TenancyApi, type Member, type Project, type Role, type Team } from './tenancyApi.js';

const OPTIONS = {
  role: { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies OptionSpecs;

const USAGE = `Usage: paddock teams [ls] [--json]
       paddock teams create NAME
       paddock teams show ID [--json]
       paddock teams add-member TEAM USER --role owner|admin|member|viewer
       paddock teams remove-member TEAM USER

Teams contain projects; their members have a role: owner, admin, member or viewer. Every user owns a
personal team from the start.

  ls              the teams you are in, with your role in each
  create NAME     make a team; you are its owner
  show ID         a team, its members and its projects
  add-member      add the user whose id is USER (POST /api/v1/users answers it) with a role; team admins
                  add members, and only owners add owners
  remove-member   remove a member; anyone may remove themselves

Options:
  --role ROLE   the role of the member added
  --json        print what the API answered, as JSON
  -h, --help    show this help`;

export function teamTable(teams: readonly Team[], now: Date): string {
  return formatTable(
    ['ID', 'NAME', 'ROLE', 'CREATED'],
    teams.map((t) => [t.id, t.personal ? `${t.name} (personal)` : t.name, t.role, formatAge(t.createdAt, now)]),
  );
}

function memberTable(members: readonly Member[], now: Date): string {
  return formatTable(['USER', 'NAME', 'ROLE', 'ADDED'], members.map((m) => [m.userId, m.name, m.role, formatAge(m.addedAt, now)]));
}

export function projectTable(projects: readonly Project[], now: Date): string {
  return formatTable(
    ['ID', 'TEAM', 'NAME', 'ROLE', 'CREATED'],
    projects.map((p) => [p.id, p.teamId, p.personal ? `${p.name} (personal)` : p.name, p.role, formatAge(p.createdAt, now)]),
  );
}

/** `--role` as the API takes it; missing or another word is a usage error naming the choices. */
export function roleOption(value: string | undefined, command: string, allowed: readonly string[] = ROLES): Role {
  if (value === undefined) throw new UsageError(`give the role with --role ${allowed.join('|')}`, command);
  if (!allowed.includes(value)) throw new UsageError(`--role must be one of ${allowed.join(', ')}, got "${value}"`, command);
  return value as Role;
}

/** The positionals a subcommand takes, exactly, named in the error when they are not all there. */
export function exactly(positionals: readonly string[], names: readonly string[], command: string, sub: string): string[] {
  if (positionals.length !== names.length) {
    throw new UsageError(`${command} ${sub} takes ${names.length === 0 ? 'no arguments' : names.join(' ')}${positionals.length > names.length ? `, not "${positionals.slice(names.length).join(' ')}"` : ''}`, command);
  }
  return [...positionals];
}

function json(ctx: Context, value: unknown): number {
  ctx.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  return 0;
}

export const teams: Command = {
  name: 'teams',
  summary: 'list, make and show teams; add and remove their members',
  usage: USAGE,

  async run(ctx, argv) {
    const args = parseArgs(argv, OPTIONS, { command: 'teams' });
    if (args.help) {
      ctx.stdout.write(`${this.usage}\n`);
      return 0;
    }
    if (args.rest.length > 0) throw new UsageError(`unexpected "${args.rest.join(' ')}"`, 'teams');
    const [sub = 'ls', ...positionals] = args.positionals;
    if (args.options.role !== undefined && sub !== 'add-member') throw new UsageError(`--role is for add-member, not ${sub}`, 'teams');
    const api = new TenancyApi(await clientConfig(ctx.env));
    const now = new Date();
    switch (sub) {
      case 'ls': {
        exactly(positionals, [], 'teams', sub);
        const list = await api.teams();
        if (args.options.json) return json(ctx, list);
        ctx.stdout.write(`${teamTable(list, now)}\n`);
        return 0;
      }
      case 'create': {
        const [name] = exactly(positionals, ['NAME'], 'teams', sub);
        const team = await api.createTeam(name!);
        if (args.options.json) return json(ctx, team);
        ctx.stdout.write(`${team.id}\n`);
        ctx.stderr.write(`made team "${team.name}"; you are its owner\n`);
        return 0;
      }
      case 'show': {
        const [id] = exactly(positionals, ['ID'], 'teams', sub);
        const team = await api.team(id!);
        if (args.options.json) return json(ctx, team);
        ctx.stdout.write(
          `Team     ${team.id}  ${team.name}${team.personal ? ' (personal)' : ''}\nYou are  ${team.role}\n\nMembers\n${memberTable(team.members, now)}\n\n` +
            (team.projects.length === 0 ? 'No projects\n' : `Projects\n${projectTable(team.projects, now)}\n`),
        );
        return 0;
      }
      case 'add-member': {
        const [team, user] = exactly(positionals, ['TEAM', 'USER'], 'teams', sub);
        const member = await api.addMember(team!, user!, roleOption(args.options.role, 'teams'));
        if (args.options.json) return json(ctx, member);
        ctx.stderr.write(`added ${member.name} (${member.userId}) to team ${team} as ${member.role}\n`);
        return 0;
      }
      case 'remove-member': {
        const [team, user] = exactly(positionals, ['TEAM', 'USER'], 'teams', sub);
        await api.removeMember(team!, user!);
        ctx.stderr.write(`removed ${user} from team ${team}\n`);
        return 0;
      }
      default:
        throw new UsageError(`unknown subcommand "${sub}": use ls, create, show, add-member or remove-member`, 'teams');
    }
  },
};
