// `paddock teams`, `paddock projects` and `paddock run --project`, run in memory (runCli with a test
// Context) against a real Paddock: one `paddock up` for the whole file.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startPaddock, type RunningPaddock } from '@paddock/testkit';
import { runCli } from '../src/cli.js';
import { testContext } from './testContext.js';

let paddock: RunningPaddock;
let dir: string;
const tokens: Record<'alice' | 'bob', string> = { alice: '', bob: '' };
let bobId: string;

before(async () => {
  [paddock, dir] = await Promise.all([startPaddock(), mkdtemp(join(tmpdir(), 'paddock-tenancy-'))]);
  for (const name of ['alice', 'bob'] as const) {
    const r = await paddock.admin.request('POST', '/api/v1/users', { name });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    tokens[name] = r.body.token;
    if (name === 'bob') bobId = r.body.id;
  }
});

after(async () => {
  await paddock?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** Runs `paddock ARGS` with `token`; its exit status and what it wrote. */
async function paddockAs(token: string, ...argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const { ctx, out } = testContext({ PADDOCK_URL: paddock.url, PADDOCK_TOKEN: token, PADDOCK_HOME: dir });
  const status = await runCli(ctx, argv);
  return { status, ...out };
}

test('a team is made, shown and given members; a project in it gets a token that runs there and is revoked', { timeout: 120_000 }, async () => {
  const made = await paddockAs(tokens.alice, 'teams', 'create', 'acme');
  assert.equal(made.status, 0, made.stderr);
  const team = made.stdout.trim();
  assert.match(team, /^t[0-9a-z]{22}$/);
  assert.match(made.stderr, /made team "acme"; you are its owner/);

  const listed = await paddockAs(tokens.alice, 'teams');
  assert.equal(listed.status, 0, listed.stderr);
  const rows = listed.stdout.trim().split('\n');
  assert.match(rows[0]!, /^ID\s+NAME\s+ROLE\s+CREATED$/);
  assert.ok(rows.some((r) => r.startsWith(team) && /\bacme\s+owner\b/.test(r)), listed.stdout);
  assert.ok(rows.some((r) => /alice \(personal\)\s+owner/.test(r)), 'her personal team too');

  const added = await paddockAs(tokens.alice, 'teams', 'add-member', team, bobId, '--role', 'viewer');
  assert.equal(added.status, 0, added.stderr);
  assert.equal(added.stderr, `added bob (${bobId}) to team ${team} as viewer\n`);

  const project = (await paddockAs(tokens.alice, 'projects', 'create', '--team', team, 'web')).stdout.trim();
  assert.match(project, /^p[0-9a-z]{22}$/);
  const shown = await paddockAs(tokens.bob, 'teams', 'show', team);
  assert.equal(shown.status, 0, shown.stderr);
  assert.match(shown.stdout, /You are  viewer/);
  assert.match(shown.stdout, new RegExp(`${bobId}\\s+bob\\s+viewer`));
  assert.match(shown.stdout, new RegExp(`${project}\\s+${team}\\s+web\\s+viewer`));
  const projectsOfTeam = await paddockAs(tokens.bob, 'projects', 'ls', '--team', team, '--json');
  assert.deepEqual(JSON.parse(projectsOfTeam.stdout).map((p: { id: string; role: string }) => [p.id, p.role]), [[project, 'viewer']]);
  assert.match((await paddockAs(tokens.bob, 'projects', 'show', project)).stdout, /^Project  \S+  web\nTeam     \S+\nYou are  viewer\n/);

  const refused = await paddockAs(tokens.bob, 'projects', 'token', 'create', project, '--role', 'member');
  assert.equal(refused.status, 1);
  assert.equal(refused.stderr, `paddock: this needs the admin role or above in project ${project} (yours is viewer)\n`);

  const minted = await paddockAs(tokens.alice, 'projects', 'token', 'create', project, '--role', 'member', '--expires', '30d', '--name', 'ci');
  assert.equal(minted.status, 0, minted.stderr);
  const ci = minted.stdout.trim();
  assert.match(ci, /^pdp_[A-Za-z0-9_-]{43}$/, 'only the token on stdout');
  const tokenId = /^token (k[0-9a-z]{22}) \(member\) for project /.exec(minted.stderr)?.[1];
  assert.ok(tokenId, minted.stderr);
  const expiresAt = Date.parse(/until (\S+): it is shown only now/.exec(minted.stderr)![1]!);
  assert.ok(Math.abs(expiresAt - Date.now() - 30 * 86_400_000) < 60_000, minted.stderr);
  const tokenList = await paddockAs(tokens.alice, 'projects', 'token', 'ls', project);
  assert.match(tokenList.stdout, new RegExp(`^ID\\s+NAME\\s+ROLE\\s+CREATED BY\\s+CREATED\\s+EXPIRES\\n${tokenId}\\s+ci\\s+member\\s+u`));
  assert.ok(!tokenList.stdout.includes(ci));

  const ran = await paddockAs(ci, 'run', '-d', '--', 'true');
  assert.equal(ran.status, 0, ran.stderr);
  const inProject = (await paddock.admin.request('GET', `/api/v1/executions/${ran.stdout.trim()}`)).body;
  assert.equal(inProject.projectId, project, "a project token's run goes to its project");
  const me = (await paddock.admin.withToken(tokens.alice).request('GET', '/api/v1/users/me')).body;
  assert.equal(inProject.owner, me.id, 'owned by who made the token');
  const chosen = await paddockAs(tokens.alice, 'run', '-d', '--project', project, '--', 'true');
  assert.equal(chosen.status, 0, chosen.stderr);
  assert.equal((await paddock.admin.request('GET', `/api/v1/executions/${chosen.stdout.trim()}`)).body.projectId, project);
  const personal = await paddockAs(tokens.alice, 'run', '-d', '--', 'true');
  assert.equal((await paddock.admin.request('GET', `/api/v1/executions/${personal.stdout.trim()}`)).body.projectId, me.personalProjectId);
  const viewerRun = await paddockAs(tokens.bob, 'run', '-d', '--project', project, '--', 'true');
  assert.equal(viewerRun.status, 1);
  assert.equal(viewerRun.stderr, `paddock: this needs the member role or above in project ${project} (yours is viewer)\n`);

  const revoked = await paddockAs(tokens.alice, 'projects', 'token', 'revoke', project, tokenId);
  assert.equal(revoked.status, 0, revoked.stderr);
  const after = await paddockAs(ci, 'ls');
  assert.equal(after.status, 1);
  assert.equal(after.stderr, 'paddock: the project token is not valid (it was revoked, or never made)\n');

  const removed = await paddockAs(tokens.alice, 'teams', 'remove-member', team, bobId);
  assert.equal(removed.status, 0, removed.stderr);
  const gone = await paddockAs(tokens.bob, 'teams', 'show', team);
  assert.equal(gone.status, 1);
  assert.equal(gone.stderr, `paddock: team ${team} not found\n`);
});

test('a command line that cannot be right is a usage error (status 2) that says what to write', async () => {
  for (const [argv, message] of [
    [['teams', 'add-member', 'T', 'U'], 'give the role with --role owner|admin|member|viewer'],
    [['teams', 'add-member', 'T', 'U', '--role', 'boss'], '--role must be one of owner, admin, member, viewer, got "boss"'],
    [['teams', 'add-member', 'T'], 'teams add-member takes TEAM USER'],
    [['teams', 'ls', '--role', 'admin'], '--role is for add-member, not ls'],
    [['teams', 'frob'], 'unknown subcommand "frob": use ls, create, show, add-member or remove-member'],
    [['projects', 'create', 'web'], 'give the team with --team T (paddock teams ls lists yours)'],
    [['projects', 'token', 'create', 'P', '--role', 'admin'], '--role must be one of member, viewer, got "admin"'],
    [['projects', 'token', 'create', 'P', '--role', 'member', '--expires', '30'], '--expires takes a number and a unit (s, m, h or d), such as 30d or 12h, got "30"'],
    [['projects', 'token', 'revoke', 'P'], 'projects token revoke takes PROJECT TOKEN'],
    [['projects', 'token'], 'token needs create, ls or revoke'],
    [['projects', 'show', 'P', '--expires', '1d'], '--role, --expires and --name are for token create'],
  ] as const) {
    const r = await paddockAs(tokens.alice, ...argv);
    assert.equal(r.status, 2, `${argv.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.split('\n')[0], `paddock: ${message}`, argv.join(' '));
  }
  const help = await paddockAs(tokens.alice, 'help', 'projects');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /paddock projects token create PROJECT --role member\|viewer \[--expires 30d\]/);
});
