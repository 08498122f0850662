/**
 * A stand-in bench for the interrupt test. Default: starts two long sleeps (one through withStopped,
 * one registered by hand, as the benches do with their labs), prints their PIDs and waits to be
 * interrupted. `mid-start`: as a bench's first lab, a start that spawns two detached sleeps in a
 * process group (as startLab does) and is still starting when it is interrupted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopOnInterrupt, withStopped } from '../../scripts/bench/common/cleanup.js';
import { ProcessGroup } from '../../src/lab/processes.js';
import { sleep } from '../../src/util/sleep.js';

async function midStart(): Promise<void> {
  await withStopped(
    async (whileStarting) => {
      const group = new ProcessGroup(mkdtempSync(join(tmpdir(), 'sipweigh-interrupt-')));
      whileStarting(() => group.stopAll());
      const first = group.spawn('first', 'sleep', ['60']);
      const second = group.spawn('second', 'sleep', ['60']);
      process.stdout.write(`started ${first.pid},${second.pid}\n`);
      await sleep(60000); // still starting when the signal arrives
      return group;
    },
    (group) => group.stopAll(),
    () => Promise.resolve(),
  );
}

async function started(): Promise<void> {
  const sleeper = (): ChildProcess => spawn('sleep', ['60'], { stdio: 'ignore' });
  const stop = (c: ChildProcess) =>
    new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) return resolve();
      c.once('exit', () => resolve());
      c.kill('SIGTERM');
    });
  const byHand = sleeper();
  stopOnInterrupt(() => stop(byHand));
  await withStopped(
    () => Promise.resolve(sleeper()),
    stop,
    async (c) => {
      process.stdout.write(`started ${byHand.pid},${c.pid}\n`);
      await sleep(60000);
    },
  );
}

await (process.argv[2] === 'mid-start' ? midStart() : started());
