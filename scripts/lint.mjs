#!/usr/bin/env node
// Paddock's lint, as CI runs it: `node scripts/lint.mjs [--fix] [path...]` (default: the whole repository).
//
// 1. Proves the rules still fire: ESLint runs over scripts/lint-fixtures, where each rule is broken on
//    purpose on a line marked `// expect-lint: <rule>`, and must report exactly those lines. A rule that
//    stopped working (a resolver that no longer maps './x.js' to './x.ts', a renamed option, a plugin
//    update) fails here instead of letting everything pass.
// 2. Checks what ESLint cannot see: no package lists @paddock/testkit in its dependencies (it is for tests,
//    a devDependency only; eslint.config.js keeps it out of src/ imports).
// 3. Lints the repository with eslint.config.js.
//
// Exit status: 0 clean, 1 findings, 2 the lint itself is broken (step 1 failed).
import { readFileSync, readdirSync, existsSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';

const root = fileURLToPath(new URL('..', import.meta.url));
const fixtures = join(root, 'scripts', 'lint-fixtures');
const TESTKIT = '@paddock/testkit';
// Fields whose packages are installed wherever the package is: the testkit must be in none of them.
const SHIPPED_DEPENDENCY_FIELDS = ['dependencies', 'optionalDependencies', 'peerDependencies'];

const started = Date.now();
const args = process.argv.slice(2);
const fix = args.includes('--fix');
const paths = args.filter((a) => a !== '--fix');
if (paths.some((p) => p.startsWith('-'))) {
  console.error(`unknown option ${paths.find((p) => p.startsWith('-'))}\nusage: node scripts/lint.mjs [--fix] [path...]`);
  process.exit(2);
}

/** Package folders (relative to `base`) named by npm workspace patterns: 'dir' or 'dir/*'. */
function workspaceDirs(base, patterns) {
  return patterns.flatMap((pattern) => {
    if (!pattern.endsWith('/*')) return [pattern];
    const parent = pattern.slice(0, -2);
    return readdirSync(join(base, parent))
      .map((name) => `${parent}/${name}`)
      .filter((dir) => statSync(join(base, dir)).isDirectory());
  });
}

/** One sentence per package.json of `dirs` that lists the testkit where it would ship. */
function testkitInDependencies(base, dirs) {
  const problems = [];
  for (const dir of dirs) {
    const file = join(base, dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8'));
    for (const field of SHIPPED_DEPENDENCY_FIELDS) {
      if (pkg[field]?.[TESTKIT] !== undefined) {
        problems.push(`${relative(root, file)}: ${pkg.name ?? dir} lists ${TESTKIT} in ${field}; it is for tests only: move it to devDependencies`);
      }
    }
  }
  return problems;
}

/** `file:line rule` for every `// expect-lint: rule[, rule]` under `dir`. */
function expectedFindings(dir) {
  const expected = [];
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith('.ts')) {
        readFileSync(path, 'utf8')
          .split('\n')
          .forEach((line, i) => {
            const rules = /\/\/ expect-lint: (.+)$/.exec(line)?.[1];
            for (const rule of rules?.split(',') ?? []) expected.push(`${relative(root, path)}:${i + 1} ${rule.trim()}`);
          });
      }
    }
  };
  walk(dir);
  return expected.sort();
}

function reportedFindings(results) {
  return results
    .flatMap((r) => r.messages.map((m) => `${relative(root, r.filePath)}:${m.line} ${m.ruleId ?? `(no rule) ${m.message}`}`))
    .sort();
}

/** Differences between two sorted lists, as lines a person reads. */
function differences(expected, reported) {
  return [
    ...expected.filter((e) => !reported.includes(e)).map((e) => `  not reported: ${e}`),
    ...reported.filter((r) => !expected.includes(r)).map((r) => `  not expected: ${r}`),
  ];
}

// --- 1. the rules still fire ---------------------------------------------------------------------------
// `ignore: false` because eslint.config.js keeps the fixtures out of the repository's lint.
const selfCheck = await new ESLint({ cwd: root, ignore: false }).lintFiles([fixtures]);
const brokenRules = differences(expectedFindings(fixtures), reportedFindings(selfCheck));
const brokenPackageCheck = differences(
  [`scripts/lint-fixtures/shipped/package.json: lint-fixture-shipped lists ${TESTKIT} in dependencies; it is for tests only: move it to devDependencies`],
  testkitInDependencies(fixtures, ['shipped', 'other']),
);
if (brokenRules.length + brokenPackageCheck.length > 0) {
  console.error(
    'The lint itself is broken: over scripts/lint-fixtures it did not report exactly what each fixture breaks.\n' +
      [...brokenRules, ...brokenPackageCheck].join('\n') +
      '\nCheck eslint.config.js (rules, resolver settings) against the installed ESLint and plugin versions.',
  );
  process.exit(2);
}

// --- 2. the testkit ships nowhere ----------------------------------------------------------------------
const rootPackage = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const packageDirs = workspaceDirs(root, rootPackage.workspaces ?? []);
const packageProblems = testkitInDependencies(root, packageDirs);

// --- 3. the repository ---------------------------------------------------------------------------------
const eslint = new ESLint({ cwd: root, fix });
const results = await eslint.lintFiles(paths.length > 0 ? paths : ['.']);
if (fix) await ESLint.outputFixes(results);
const formatter = await eslint.loadFormatter('stylish');
const text = await formatter.format(results);
if (text) console.log(text);
for (const problem of packageProblems) console.log(problem);

const findings = results.reduce((n, r) => n + r.errorCount + r.warningCount, 0) + packageProblems.length;
const seconds = ((Date.now() - started) / 1000).toFixed(1);
console.log(`lint: ${results.length} files and ${packageDirs.length} package.json checked, ${findings} findings, in ${seconds} s`);
process.exit(findings > 0 ? 1 : 0);
