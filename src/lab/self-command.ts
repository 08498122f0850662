/**
 * How to start this same sipweigh CLI as a child process (the lab's agents and controller), whether
 * we run from the build (dist/…/main.js) or from the TypeScript sources under tsx (tests).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PACKAGE_ROOT } from '../util/package-root.js';

export function sipweighCommand(): { cmd: string; args: string[] } {
  const fromSources = fileURLToPath(import.meta.url).endsWith('.ts');
  const built = join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');
  if (!fromSources && existsSync(built)) return { cmd: process.execPath, args: [built] };
  return { cmd: process.execPath, args: ['--import', 'tsx', join(PACKAGE_ROOT, 'src', 'cli', 'main.ts')] };
}
