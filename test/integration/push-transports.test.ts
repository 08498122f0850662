/**
 * List file transports: the local file and SFTP through a real OpenSSH server on 127.0.7.30 (host
 * and client keys from ssh-keygen, fingerprint taken with `ssh-keygen -lf` as an operator would),
 * and a dispatcher push through SFTP into a real LB on 127.0.7.40.
 */
import { expect } from 'chai';
import { descendantPids } from '../support/proc-tree.js';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { startTestSshd, type TestSshd } from './push-sshd.js';
import { pidAlive } from '../../src/lab/processes.js';
import { DispatcherPusher } from '../../src/push/pusher.js';
import { formatDispatcherList } from '../../src/kamailio/dispatcher-list.js';
import { ListTransportError, type ListFileTransport } from '../../src/push/transports/transport.js';
import { LocalListFile } from '../../src/push/transports/local-file.js';
import { SftpListFile, type SftpListFileOptions } from '../../src/push/transports/sftp.js';
import { eventually, useProcessGroup } from '../support/harness.js';
import { destinations, linesOf, listedLines, testLb } from './push-lb.js';

const SSH_IP = '127.0.7.30';
const SSH_PORT = 2222;

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

/**
 * Writes `versions` in turn through `transport` while a reader keeps reading the file: every read
 * must be one whole version (or the file's initial content), never a mix or an empty file.
 */
async function writeWhileReading(
  transport: ListFileTransport,
  path: string,
  versions: string[],
): Promise<number> {
  const allowed = new Set([readFileSync(path, 'utf8'), ...versions]);
  let reads = 0;
  let torn: string | undefined;
  let writing = true;
  const reader = (async () => {
    while (writing && reads < 200_000) {
      const text = readFileSync(path, 'utf8');
      reads++;
      if (!allowed.has(text)) torn ??= text;
      await new Promise((r) => setImmediate(r));
    }
  })();
  try {
    for (const v of versions) await transport.write(v);
  } finally {
    writing = false;
    await reader;
  }
  expect(torn, 'a reader saw a partial list').to.equal(undefined);
  return reads;
}

const bigVersions = (n: number) =>
  Array.from({ length: n }, (_, k) => formatDispatcherList(destinations(500, (i) => 1 + ((i + k) % 100))));

describe('integration: list file transports', function () {
  this.timeout(180_000);
  const h = useProcessGroup('push-sftp');
  let sshd: TestSshd;
  const transports: ListFileTransport[] = [];
  after(async () => {
    await Promise.all(transports.map((t) => t.close()));
  });

  const sftp = (
    path: string,
    over: Partial<Omit<SftpListFileOptions, 'ssh'>> = {},
    hostFingerprint = sshd.target.hostFingerprint,
  ): SftpListFile => {
    const t = new SftpListFile({
      ssh: { ...sshd.target, hostFingerprint },
      path,
      deadlineMs: 30_000,
      connectTimeoutMs: 20_000,
      ...over,
    });
    transports.push(t);
    return t;
  };

  before(async function () {
    sshd = await startTestSshd(h.group, SSH_IP, SSH_PORT);
  });

  for (const kind of ['local', 'sftp'] as const) {
    it(`${kind}: replaces the file whole while a reader reads it, leaves no temp file, keeps the mode`, async function () {
      const dir = join(h.group.runDir, `atomic-${kind}`);
      mkdirSync(dir);
      const path = join(dir, 'dispatcher.list');
      writeFileSync(path, formatDispatcherList(destinations(3)), { mode: 0o640 });
      const transport = kind === 'local' ? new LocalListFile({ path }) : sftp(path);
      transports.push(transport);
      const versions = bigVersions(20);
      const reads = await writeWhileReading(transport, path, versions);
      // The reader ran between the writes (each write yields to the event loop several times).
      expect(reads).to.be.at.least(versions.length);
      expect(readFileSync(path, 'utf8')).to.equal(versions.at(-1));
      expect(readdirSync(dir)).to.deep.equal(['dispatcher.list']);
      if (kind === 'local') expect(statSync(path).mode & 0o777).to.equal(0o640);
      expect(transport.describe()).to.include(path);
    });
  }

  it('a dispatcher push through SFTP lands in a real LB', async function () {
    const lb = testLb(h.group, 'lb-sftp', '127.0.7.40', destinations(3));
    try {
      await lb.start();
      const pusher = new DispatcherPusher({ rpc: lb.rpc, transport: sftp(lb.listFile) });
      const desired = destinations(3, (i) => 15 * (i + 1));
      const out = await pusher.push(desired);
      expect(out.kind, JSON.stringify(out)).to.equal('applied');
      expect(await listedLines(lb.rpc)).to.deep.equal(linesOf(desired));
      expect(readdirSync(dirname(lb.listFile)).filter((f) => f.endsWith('.tmp'))).to.deep.equal([]);
    } finally {
      lb.rpc.client.close();
    }
  });

  it('refuses a host whose key does not match the fingerprint: nothing written', async function () {
    const path = join(h.group.runDir, 'wrong-host.list');
    writeFileSync(path, 'old\n');
    const wrong = `SHA256:${'A'.repeat(43)}`;
    const e = await rejection(sftp(path, {}, wrong).write('new\n'));
    expect(e).to.be.instanceOf(ListTransportError);
    expect(e).to.include({ kind: 'host_key' });
    expect((e as Error).message)
      .to.include(sshd.target.hostFingerprint)
      .and.include(wrong);
    expect(readFileSync(path, 'utf8')).to.equal('old\n');
  });

  it('reconnects on the next write after the SSH server went away and came back', async function () {
    const path = join(h.group.runDir, 'reconnect.list');
    // Generous: an SSH handshake on a loaded 2-core box can take seconds.
    const t = sftp(path, { deadlineMs: 30_000, connectTimeoutMs: 20_000 });
    await t.write('one\n');
    expect(t.connections).to.equal(1);
    // Stopping the listener leaves established sessions running: end ours too, by PID.
    const sessions = descendantPids(sshd.process.pid);
    await sshd.process.stop();
    for (const pid of sessions) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await eventually(() => sessions.every((pid) => !pidAlive(pid)), 'the SSH session processes exited');
    const e = await rejection(t.write('two\n'));
    expect(e).to.be.instanceOf(ListTransportError);
    if (!(e instanceof ListTransportError)) return;
    expect(e.kind).to.be.oneOf(['connect', 'deadline']);
    expect(readFileSync(path, 'utf8')).to.equal('one\n');
    await sshd.start();
    await t.write('three\n');
    expect(readFileSync(path, 'utf8')).to.equal('three\n');
    expect(t.connections).to.equal(2);
  });
});
