/**
 * Mocha glue for tests that start real programs: each test file gets its own ProcessGroup in a fresh
 * run directory; every process in it is stopped by PID in `after()`, whatever the tests did.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ProcessGroup } from '../../src/lab/processes.js';
import { sleep } from '../../src/util/sleep.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const KAMAILIO_DIR = join(REPO_ROOT, 'kamailio');
/** The lab's own LB and backend configs (built on the snippets in KAMAILIO_DIR). */
export const LAB_KAMAILIO_DIR = join(REPO_ROOT, 'src', 'lab', 'kamailio');
export const SCENARIO_DIR = join(REPO_ROOT, 'test', 'scenarios');

export interface GroupHandle {
  /** The group of the current file; valid between before() and after(). */
  readonly group: ProcessGroup;
}

/**
 * Call at the top of a `describe`: returns a handle whose `group` is created in `before()` and
 * stopped in `after()`. Also stopped after a failing test when `stopOnFailure` is set, so a broken
 * test cannot leave load running into the next one.
 */
export function useProcessGroup(label: string): GroupHandle {
  let current: ProcessGroup | undefined;
  const handle: GroupHandle = {
    get group(): ProcessGroup {
      if (!current) throw new Error('useProcessGroup: group used outside before()/after()');
      return current;
    },
  };
  before(function () {
    current = new ProcessGroup(mkdtempSync(join(tmpdir(), `sipweigh-${label}-`)));
  });
  after(async function () {
    this.timeout(30000);
    await current?.stopAll();
  });
  return handle;
}

export { sleep };

/** Polls `probe` until it returns a truthy value or the (generous) deadline passes. */
export async function eventually<T>(
  probe: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  what: string,
  timeoutMs = 20000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    }
    await sleep(intervalMs);
  }
}
