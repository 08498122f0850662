#!/usr/bin/env node
// The test command: type-check everything (tests included), then mocha.
//   node scripts/run-tests.mjs            whole suite (unit, then integration)
//   node scripts/run-tests.mjs --unit     unit tests only: pure modules, no processes, seconds
//   node scripts/run-tests.mjs FILES...   just these files
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const files = args.filter((a) => !a.startsWith('--'));

const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.test.json'], {
  stdio: 'inherit',
});
if (tsc.status !== 0) {
  process.stdout.write('\n0 passed, 1 failed\n');
  process.exit(1);
}

const spec =
  files.length > 0
    ? files
    : unitOnly
      ? ['test/unit/**/*.test.ts']
      : ['test/unit/**/*.test.ts', 'test/integration/**/*.test.ts'];
const mocha = spawnSync(process.execPath, ['node_modules/mocha/bin/mocha.js', ...spec], { stdio: 'inherit' });
process.exit(mocha.status ?? 1);
