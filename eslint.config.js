// Lint that protects Paddock's architecture: packages meet only at their public entry, no promise is
// left unhandled, no module cycle, type-only imports say so, and @paddock/testkit never reaches shipped
// code; plus typescript-eslint's recommended rules. Formatting is not linted.
// Run it as CI does with `node scripts/lint.mjs`, which also proves each rule still fires and checks
// that no package.json ships the testkit.
import { defineConfig, globalIgnores } from 'eslint/config';
import tseslint from 'typescript-eslint';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';

// Packages whose src/ is itself a test or benchmark harness: they start a whole Paddock through
// @paddock/testkit, and nothing in them is shipped.
const harnessPackages = ['bench', 'test/e2e'];

const publicEntryOnly = {
  regex: '^@paddock/[^/]+/.+',
  message: "Import another Paddock package only through its public entry ('@paddock/<name>'); export what you need from its src/index.ts.",
};

export default defineConfig(
  globalIgnores([
    '**/node_modules/',
    '**/dist/',
    'proto/src/gen/',
    'web/vendor/',
    // Code that breaks each rule on purpose, to prove the rules still fire (scripts/lint.mjs).
    'scripts/lint-fixtures/',
  ]),
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommended],
    plugins: { 'import-x': importX },
    languageOptions: {
      parserOptions: {
        // Each file is typed by its own package's tsconfig.json, project references included, as an
        // editor types it; one TypeScript service serves them all.
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    settings: {
      // The cycle check reads the modules an import leads to: they are TypeScript too.
      'import-x/extensions': ['.ts', '.js', '.mjs'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      // Sources import each other as './x.js' (NodeNext), which is './x.ts' before the build.
      'import-x/resolver-next': [
        createNodeResolver({
          extensions: ['.ts', '.d.ts', '.js', '.mjs', '.json', '.node'],
          extensionAlias: { '.js': ['.ts', '.d.ts', '.js'] },
        }),
      ],
      // Another workspace resolves to its built dist/: cycles between packages are already refused by
      // tsc's project references, so the cycle check stays inside a package and never parses build output.
      'import-x/ignore': ['[\\\\/]dist[\\\\/]', 'node_modules'],
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // node:test runs the tests and suites it is given and reports their failures itself; a subtest
          // (t.test, matched by the same name) still running when its parent ends is cancelled, a failure.
          allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] }],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      // '../../libs/bus/src/x.js' from another package: a deep import under a relative disguise.
      'import-x/no-relative-packages': 'error',
      'no-restricted-imports': [
        'error',
        {
          patterns: [publicEntryOnly],
        },
      ],
    },
  },
  {
    // Shipped code: @paddock/testkit is for tests only.
    files: ['**/src/**/*.ts'],
    ignores: ['libs/testkit/**', ...harnessPackages.map((dir) => `${dir}/**`)],
    rules: {
      // Replaces the rule's options above, so the public-entry pattern is repeated.
      'no-restricted-imports': [
        'error',
        {
          paths: [
            {
              name: '@paddock/testkit',
              message: '@paddock/testkit is for tests: import it from test/ only, and list it in devDependencies.',
            },
          ],
          patterns: [publicEntryOnly],
        },
      ],
    },
  },
  {
    // Scripts, this file and the browser's terminal page: no tsconfig, so no type-aware rules.
    files: ['**/*.{js,mjs,cjs}'],
    extends: [tseslint.configs.recommended],
  },
);
