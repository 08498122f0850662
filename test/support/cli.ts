/** Runs the sipweigh CLI as an operator would: a separate process, from the TypeScript sources. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './harness.js';

export interface CliResult {
  readonly code: number | null;
  readonly out: string;
  readonly err: string;
}

export function sipweigh(...args: string[]): CliResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src/cli/main.ts'), ...args], {
    encoding: 'utf8',
    cwd: REPO_ROOT,
    timeout: 90000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
