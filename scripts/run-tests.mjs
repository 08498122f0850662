#!/usr/bin/env node
// The test command: type-check, lint and format-check everything (tests included), then mocha.
//   node scripts/run-tests.mjs            whole suite (unit, then integration)
//   node scripts/run-tests.mjs --unit     unit tests only: pure modules, no processes, seconds
//   node scripts/run-tests.mjs FILES...   just these files (static checks skipped)
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const files = args.filter((a) => !a.startsWith('--'));

// Static checks first: a type error, a lint error or unformatted code fails the run before any
// process is started, counted as one failed check so that CI's closing line tells.
const checks = [
  ['type check', ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.test.json']],
  ['lint', ['node_modules/eslint/bin/eslint.js', '.']],
  ['format', ['node_modules/prettier/bin/prettier.cjs', '--check', '--log-level', 'warn', '.']],
];
for (const [name, argv] of files.length > 0 ? checks.slice(0, 1) : checks) {
  const r = spawnSync(process.execPath, argv, { stdio: 'inherit' });
  if (r.status !== 0) {
    process.stdout.write(
      `\n${name} failed (npm run lint; npm run format fixes formatting)\n0 passed, 1 failed\n`,
    );
    process.exit(1);
  }
}

const spec =
  files.length > 0
    ? files
    : unitOnly
      ? ['test/unit/**/*.test.ts']
      : ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts'];
const mocha = spawnSync(process.execPath, ['node_modules/mocha/bin/mocha.js', ...spec], { stdio: 'inherit' });
process.exit(mocha.status ?? 1);
