/**
 * A real OpenSSH server with the SFTP subsystem for the push tests: host and client keys made with
 * ssh-keygen in the run directory, the host fingerprint taken with `ssh-keygen -lf` as an operator
 * would take it (not computed by our own code).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { SshTarget } from '../../src/util/ssh-session.js';
import type { ManagedProcess, ProcessGroup } from '../../src/lab/processes.js';
import { isBound } from '../../src/lab/sockets.js';
import { eventually } from '../support/harness.js';

export interface TestSshd {
  /** Connection settings of the test user, with the true host fingerprint. */
  readonly target: SshTarget;
  process: ManagedProcess;
  /** Starts sshd (again) on the same keys and address. */
  start(): Promise<ManagedProcess>;
}

export async function startTestSshd(group: ProcessGroup, ip: string, port: number): Promise<TestSshd> {
  const keys = join(group.runDir, `sshd-keys-${port}`);
  mkdirSync(keys, { recursive: true });
  mkdirSync('/run/sshd', { recursive: true });
  for (const name of ['host_key', 'client_key']) {
    execFileSync('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-C',
      `sipweigh-push-${name}`,
      '-f',
      join(keys, name),
    ]);
  }
  writeFileSync(join(keys, 'authorized_keys'), readFileSync(join(keys, 'client_key.pub')));
  const fingerprint = execFileSync('ssh-keygen', ['-lf', join(keys, 'host_key.pub')], {
    encoding: 'utf8',
  }).split(' ')[1]!;
  const start = async (): Promise<ManagedProcess> => {
    const p = group.spawn(`sshd-${port}`, '/usr/sbin/sshd', [
      ...['-D', '-e', '-f', '/dev/null', '-h', join(keys, 'host_key'), '-p', String(port)],
      ...['-o', `ListenAddress=${ip}`, '-o', `AuthorizedKeysFile=${join(keys, 'authorized_keys')}`],
      ...['-o', 'StrictModes=no', '-o', 'UsePAM=no', '-o', `PidFile=${join(keys, 'sshd.pid')}`],
      ...['-o', 'Subsystem=sftp /usr/lib/openssh/sftp-server'],
    ]);
    await eventually(async () => {
      if (!p.isRunning()) throw new Error(`sshd exited:\n${p.tail(20)}`);
      return isBound({ transport: 'tcp', address: ip, port });
    }, 'sshd listening');
    return p;
  };
  const sshd: TestSshd = {
    target: {
      host: ip,
      port,
      username: userInfo().username,
      privateKey: readFileSync(join(keys, 'client_key')),
      hostFingerprint: fingerprint,
    },
    process: await start(),
    start: async () => (sshd.process = await start()),
  };
  return sshd;
}
