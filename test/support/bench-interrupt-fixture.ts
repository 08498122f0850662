/**
 * A stand-in bench for the interrupt test: starts two long sleeps (one through withStopped, one
 * registered by hand, as the benches do with their labs), prints their PIDs and waits to be interrupted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { stopOnInterrupt, withStopped } from '../../scripts/bench/common/cleanup.js';

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
    await new Promise((r) => setTimeout(r, 60000));
  },
);
