/**
 * The agentless probe's collection (what the controller's SSH poller runs each probe) against a real OpenSSH server started by the test on 127.0.4.30
 * (host and client keys made with ssh-keygen in a temp dir), reading real /proc figures and, through
 * kamcmd, a real Kamailio's statistics; refusing a wrong host key; reconnecting after sshd restarts.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { ManagedProcess } from '../../src/lab/processes.js';
import { startKamailio, type KamailioInstance } from '../../src/lab/kamailio.js';
import { isBound } from '../../src/lab/sockets.js';
import { findUdpSocket, parseProcNetUdp } from '../../src/metrics/proc-net-udp.js';
import {
  SshProbeCollection,
  type AgentlessSample,
  type SshCollectorOptions,
} from '../../src/metrics/ssh-collector.js';
import { agentlessMetrics } from '../../src/probe/agentless.js';
import { SshHostKeyMismatchError, SshSession, type SshTarget } from '../../src/util/ssh-session.js';
import { eventually, REPO_ROOT, sleep, useProcessGroup } from '../support/harness.js';

const SSH_IP = '127.0.4.30';
const SSH_PORT = 2222;
const KAM_IP = '127.0.4.32';
const HOLD_IP = '127.0.4.33';
const HOLD_PORT = 5090;

describe('integration: agentless SSH collector', function () {
  this.timeout(300_000);
  const handle = useProcessGroup('ssh');
  let dir: string;
  let fingerprint: string;
  let clientKey: Buffer;
  let kamailio: KamailioInstance;
  const sessions: SshSession[] = [];

  const startSshd = async (port = SSH_PORT): Promise<ManagedProcess> => {
    const p = handle.group.spawn(`sshd-${port}`, '/usr/sbin/sshd', [
      '-D',
      '-e',
      '-f',
      '/dev/null',
      '-h',
      join(dir, 'host_key'),
      '-p',
      String(port),
      '-o',
      `ListenAddress=${SSH_IP}`,
      '-o',
      `AuthorizedKeysFile=${join(dir, 'authorized_keys')}`,
      '-o',
      'StrictModes=no',
      '-o',
      'UsePAM=no',
      '-o',
      `PidFile=${join(dir, `sshd-${port}.pid`)}`,
    ]);
    try {
      await eventually(async () => {
        if (!p.isRunning()) throw new Error('sshd exited');
        return isBound({ transport: 'tcp', address: SSH_IP, port });
      }, 'sshd listening');
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${p.tail(30)}`, { cause: e });
    }
    return p;
  };

  /** One agentless backend as the poller holds it: a session and the probe's collection on it. */
  const probe = (
    overrides: { ssh?: SshTarget } & Pick<SshCollectorOptions, 'kamcmd' | 'sipSocket'> = {},
  ): Probe => {
    const session = new SshSession(
      overrides.ssh ?? {
        host: SSH_IP,
        port: SSH_PORT,
        username: userInfo().username,
        privateKey: clientKey,
        hostFingerprint: fingerprint,
      },
      {
        reconnect: { initialMs: 100, maxMs: 500, factor: 2, jitter: 0.2 },
        keepaliveIntervalMs: 1000,
        connectTimeoutMs: 5000,
      },
    );
    sessions.push(session);
    session.start();
    return { session, collection: new SshProbeCollection(session, overrides) };
  };

  before(async function () {
    dir = join(handle.group.runDir, 'keys');
    mkdirSync(dir, { recursive: true });
    mkdirSync('/run/sshd', { recursive: true });
    execFileSync('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-C',
      'sipweigh-test-host',
      '-f',
      join(dir, 'host_key'),
    ]);
    execFileSync('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-C',
      'sipweigh-test-client',
      '-f',
      join(dir, 'client_key'),
    ]);
    writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client_key.pub')));
    clientKey = readFileSync(join(dir, 'client_key'));
    // The fingerprint as an operator would take it: from ssh-keygen, not from our own code.
    fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(dir, 'host_key.pub')], {
      encoding: 'utf8',
    }).split(' ')[1]!;
    expect(fingerprint).to.match(/^SHA256:/);
    await startSshd();
    kamailio = await startKamailio(handle.group, {
      name: 'kamailio-ssh',
      cfg: join(REPO_ROOT, 'test', 'fixtures', 'kamailio', 'rpc-test.cfg'),
      defines: { SW_TEST_IP: KAM_IP, SW_TEST_SIP_PORT: 5060, SW_TEST_RPC_PORT: 5071 },
      waitFor: [{ transport: 'udp', address: KAM_IP, port: 5060 }],
    });
  });

  after(async function () {
    for (const s of sessions) s.close();
  });

  it('reads real host figures over one SSH connection, including a socket queue it can check', async function () {
    // A socket that never reads, holding five datagrams: its queue is what the collector must see.
    const holder = handle.group.spawn('udp-holder', 'python3', [
      '-c',
      `import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('${HOLD_IP}',${HOLD_PORT}))\ntime.sleep(120)`,
    ]);
    await eventually(() => isBound({ transport: 'udp', address: HOLD_IP, port: HOLD_PORT }), 'holder bound');
    const tx = createSocket('udp4');
    for (let i = 0; i < 5; i++)
      await new Promise<void>((r) => tx.send(Buffer.alloc(300, 0x41), HOLD_PORT, HOLD_IP, () => r()));
    tx.close();
    const local = findUdpSocket(parseProcNetUdp(readFileSync('/proc/net/udp', 'utf8')), HOLD_IP, HOLD_PORT)!;
    expect(local.rxQueueBytes).to.be.greaterThan(0);

    const m = probe({ sipSocket: { address: HOLD_IP, port: HOLD_PORT } });
    const sample = await sampleUntil(
      m,
      (s) => s.values.cpu_util !== undefined && s.values.udp_rx_queue_bytes !== undefined,
      'host figures over ssh',
    );
    const figures = sample.values;
    expect(figures.cpu_util).to.be.within(0, 1);
    expect(figures.mem_used_ratio).to.be.within(0, 1);
    expect(figures.load1).to.be.at.least(0);
    expect(figures.udp_rx_queue_bytes).to.equal(local.rxQueueBytes);
    expect(figures.udp_drops).to.equal(0);
    expect(sample.sipSocket).to.equal('found');
    // Nothing Kamailio-related was configured, and OPTIONS are never timed over SSH.
    expect(sample.kamailio).to.equal('off');
    expect(figures.tm_current).to.equal(undefined);
    expect(m.session.connections).to.equal(1);
    const report = agentlessMetrics(sample, 120);
    expect(report).to.include({ capacity: 120, draining: false, udp_rx_queue_bytes: local.rxQueueBytes });
    expect(report.options_rtt_ms).to.equal(null);
    await holder.stop();
  });

  it('reads Kamailio figures through kamcmd in the same command, with rates from counter deltas', async function () {
    const m = probe({
      kamcmd: { socket: `unix:${join(kamailio.runDir, 'kamailio_ctl')}` },
      sipSocket: { port: 5060 },
    });
    await sampleUntil(m, (s) => s.values.tm_current !== undefined, 'tm.stats over kamcmd');
    // Offer some SIP requests; the request rate must see them.
    const tx = createSocket('udp4');
    await new Promise<void>((r) => tx.bind(0, '127.0.4.34', () => r()));
    const sendOptions = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const msg = `OPTIONS sip:${KAM_IP}:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.4.34:${tx.address().port};branch=z9hG4bK-ssh${i}-${Date.now()}\r\nMax-Forwards: 70\r\nFrom: <sip:t@127.0.4.34>;tag=${i}\r\nTo: <sip:${KAM_IP}>\r\nCall-ID: ssh-${i}-${Date.now()}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`;
        await new Promise<void>((r) => tx.send(msg, 5060, KAM_IP, () => r()));
      }
    };
    const deadline = Date.now() + 60000;
    let sample: AgentlessSample | undefined;
    while (Date.now() < deadline && !((sample?.values.req_rate ?? 0) > 0)) {
      await sendOptions(20);
      await sleep(200);
      sample = await m.collection.collect(20000).catch(() => sample);
    }
    tx.close();
    expect(sample?.values.req_rate).to.be.greaterThan(0);
    const s = sample!.values;
    expect(sample!.kamailio).to.equal('answered');
    expect(s.tm_current).to.be.at.least(0);
    expect(s.dialogs_active).to.equal(0);
    expect(s.err5xx_rate).to.be.at.least(0);
    // Port-only matching found Kamailio's SIP socket.
    expect(sample!.sipSocket).to.equal('found');
    expect(s.udp_rx_queue_bytes).to.be.a('number');
  });

  it('refuses a host whose key does not match the configured fingerprint, with a clear error', async function () {
    const wrong = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(dir, 'client_key.pub')], {
      encoding: 'utf8',
    }).split(' ')[1]!;
    const m = probe({
      ssh: {
        host: SSH_IP,
        port: SSH_PORT,
        username: userInfo().username,
        privateKey: clientKey,
        hostFingerprint: wrong,
      },
    });
    const err = await eventually(() => m.session.lastError, 'a connection failure');
    expect(err).to.be.instanceOf(SshHostKeyMismatchError);
    expect(err.message).to.include(fingerprint).and.include(wrong).and.include('refusing');
    await sleep(500);
    expect(m.session.connections).to.equal(0);
    const refused = await m.collection.collect(20000).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(refused?.message).to.include('host key');
    m.session.close();
  });

  it('runs commands in one long-lived shell, in order; an overrun discards it and the next gets a new one', async function () {
    const m = probe();
    await eventually(() => m.session.state === 'ready', 'connected', 60000);
    const pids = await Promise.all([m.session.run('echo $$', 20000), m.session.run('echo $$', 20000)]);
    expect(pids[0]).to.match(/^\d+\n$/);
    expect(pids[1], 'same shell process').to.equal(pids[0]);
    expect(await Promise.all([m.session.run('printf a', 20000), m.session.run('true', 20000)])).to.deep.equal(
      ['a', ''],
    );
    const overrun = await m.session.run('sleep 5', 300).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(overrun?.message).to.include('did not finish within');
    const after = await m.session.run('echo $$', 20000);
    expect(after).to.match(/^\d+\n$/);
    expect(after, 'a fresh shell after the overrun').to.not.equal(pids[0]);
    m.session.close();
  });

  it('refuses a malformed fingerprint at construction', function () {
    expect(
      () =>
        new SshSession({
          host: SSH_IP,
          port: SSH_PORT,
          username: 'x',
          privateKey: clientKey,
          hostFingerprint: 'MD5:aa:bb',
        }),
    ).to.throw('SHA256:');
  });

  it('reconnects with backoff after the SSH server is restarted (its connection dropped)', async function () {
    const port = SSH_PORT + 1;
    let server = await startSshd(port);
    const m = probe({
      ssh: {
        host: SSH_IP,
        port,
        username: userInfo().username,
        privateKey: clientKey,
        hostFingerprint: fingerprint,
      },
    });
    await figures(m, 'figures before the restart', server);
    expect(m.session.connections).to.equal(1);
    // A restarted sshd leaves running sessions alone (they run in their own process, in their own
    // session); a host reboot does not. Stop the listener and the process serving our connection.
    const sessions = childPids(server.pid);
    expect(sessions.length).to.be.at.least(1);
    await server.stop();
    for (const pid of sessions) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    await eventually(
      () =>
        m.collection.collect(20000).then(
          () => false,
          () => true,
        ),
      'probes failing while sshd is down',
      60000,
    );
    expect(m.session.state).to.not.equal('ready');
    expect(m.session.lastError).to.be.instanceOf(Error);
    await sleep(1000); // several failed attempts against a closed port
    server = await startSshd(port);
    await figures(m, 'figures after the restart', server);
    expect(m.session.connections).to.equal(2);
    m.session.close();
    await server.stop();
  });
});

interface Probe {
  readonly session: SshSession;
  readonly collection: SshProbeCollection;
}

/** Probes every 200 ms, as a poller would, until a sample satisfies `ok`; a failed probe is retried. */
function sampleUntil(
  m: Probe,
  ok: (s: AgentlessSample) => boolean,
  what: string,
  timeoutMs = 60000,
): Promise<AgentlessSample> {
  return eventually(
    async () => {
      const s = await m.collection.collect(20000);
      return ok(s) ? s : undefined;
    },
    what,
    timeoutMs,
    200,
  );
}

/** Waits for host figures; on timeout says what the session was doing and what sshd logged. */
async function figures(m: Probe, what: string, server: ManagedProcess): Promise<void> {
  await sampleUntil(m, (s) => s.values.mem_used_ratio !== undefined, what).catch((e: Error) => {
    const why = { state: m.session.state, lastError: m.session.lastError?.message };
    throw new Error(`${e.message}: ${JSON.stringify(why)}\n${server.tail(60)}`, { cause: e });
  });
}

/** PIDs whose parent is `pid` (sshd's per-connection processes), from /proc. */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}
