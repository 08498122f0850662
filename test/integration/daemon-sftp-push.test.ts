/**
 * The LB's list written over SFTP by `sipweigh controller` (lab on 127.34.x.x, a real OpenSSH
 * server on 127.34.0.30:2222 whose host key fingerprint is taken with ssh-keygen): with a wrong
 * pinned fingerprint nothing is written and the LB keeps its list; with the right one the list file
 * is written over SFTP, the LB reloads and holds the weights. With sshd stopped a drain cannot reach
 * the LB (it keeps its last weights, the API counts the failures); sshd back, it is applied.
 */
import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pidAlive } from '../../src/lab/processes.js';
import {
  descendantPids,
  startDaemonLab,
  type ControllerYaml,
  type DaemonLab,
} from '../support/daemon-lab.js';
import { eventually, sleep } from '../support/harness.js';
import { http, sample, waitReady } from './api-support.js';
import { startTestSshd, type TestSshd } from './push-sshd.js';

const SSHD = { ip: '127.34.0.30', port: 2222 };
const STALE =
  '1 sip:127.34.0.11:5060 0 0 duid=be1;rweight=30\n1 sip:127.34.0.12:5060 1 0 duid=be2;rweight=1\n';

interface LbNodeJson {
  readonly name: string;
  readonly target: string;
  readonly synced: boolean;
  readonly consecutive_failures: number;
  readonly last_push: { readonly result: string } | null;
}

describe('SFTP push from the controller (real lab and sshd on 127.34.x.x)', function () {
  this.timeout(240000);
  let d: DaemonLab | undefined;
  let sshd: TestSshd | undefined;

  const lbNode = async () =>
    ((await http('GET', `${d!.base}/api/v1/lb-nodes`)).json as { lb_nodes: LbNodeJson[] }).lb_nodes[0]!;
  function configWith(fingerprint: string): ControllerYaml {
    const cfg = d!.labConfig();
    cfg.lb_nodes[0]!.dispatcher_list = {
      path: d!.lab.state.dispatcher_list,
      sftp: {
        host: SSHD.ip,
        port: SSHD.port,
        username: sshd!.target.username,
        private_key_file: join(d!.lab.group.runDir, `sshd-keys-${SSHD.port}`, 'client_key'),
        host_fingerprint: fingerprint,
      },
    };
    return cfg;
  }

  before(async function () {
    d = await startDaemonLab({ backends: 2, net: 34 });
    sshd = await startTestSshd(d.lab.group, SSHD.ip, SSHD.port);
    writeFileSync(d.lab.state.dispatcher_list, STALE);
    await d.rpc.call('dispatcher.reload', []);
  });

  after(async function () {
    await d?.stop();
  });

  it('a wrong pinned host fingerprint: nothing is written, the LB keeps its list, the API says the push failed', async function () {
    const right = sshd!.target.hostFingerprint;
    // Same form, another key: one character of the hash changed.
    const wrong = `${right.slice(0, 10)}${right[10] === 'A' ? 'B' : 'A'}${right.slice(11)}`;
    const p = d!.startController(configWith(wrong));
    await eventually(
      async () => (await lbNode()).consecutive_failures >= 2,
      'pushes failing against the wrong host key',
      60000,
      250,
    );
    const n = await lbNode();
    expect(n.target).to.contain(`sftp://${sshd!.target.username}@${SSHD.ip}:${SSHD.port}/`);
    expect(n.last_push?.result).to.equal('failed');
    expect(readFileSync(d!.lab.state.dispatcher_list, 'utf8')).to.equal(STALE);
    // The weights stay the LB's own. (be2's state may not: a controller that cannot push withholds its
    // lease, and the LB's own probing brings a live be2 back into rotation: its backstop.)
    const w = await d!.lbWeights();
    expect(w?.get('be1')).to.equal(30);
    const errors = sample(await d!.metrics(), 'sipweigh_lb_push_errors_total', { node: 'lb1' })?.value ?? 0;
    expect(errors).to.be.greaterThan(0);
    await p.stop();
  });

  it('the right fingerprint: the list is written over SFTP, the LB reloads and holds the weights', async function () {
    d!.startController(configWith(sshd!.target.hostFingerprint));
    await waitReady(d!.base);
    // The controller takes over from the weights the LB holds (30 and 1 here, be2 revived by the LB's
    // own probing while the first controller could not push), so it does not jump them to 100: it
    // writes its own list over SFTP, be2 in rotation, and the LB holds it.
    await eventually(
      async () => {
        const w = await d!.lbWeights();
        const file = readFileSync(d!.lab.state.dispatcher_list, 'utf8');
        return (w?.get('be1') ?? 0) > 0 && (w?.get('be2') ?? 0) > 0 && file !== STALE;
      },
      'be1 and be2 in rotation at the LB, from a list written over SFTP',
      60000,
      200,
    );
    const file = readFileSync(d!.lab.state.dispatcher_list, 'utf8');
    expect(file).to.match(/^1 sip:127\.34\.0\.11:5060 0 \d+ duid=be1;rweight=\d+/m);
    expect(file).to.match(/^1 sip:127\.34\.0\.12:5060 0 \d+ duid=be2;rweight=\d+/m);
    const n = await lbNode();
    expect(n).to.deep.include({ synced: true, consecutive_failures: 0 });
  });

  it('sshd stopped: a drain cannot reach the LB (it keeps its weights); sshd back, the drain is applied', async function () {
    // Stopping the listener leaves the controller's established session running: end it too, by PID.
    const sessions = descendantPids(sshd!.process.pid);
    await sshd!.process.stop();
    for (const pid of sessions) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    await eventually(() => sessions.every((pid) => !pidAlive(pid)), 'the SSH sessions gone', 10000);
    const before = (await d!.lbWeights())?.get('be2');
    expect(before, 'be2 in rotation before the drain').to.be.greaterThan(0);
    const r = await http('POST', `${d!.base}/api/v1/backends/be2/drain`, { token: d!.token });
    expect(r.status).to.equal(200);
    await eventually(
      async () => (await lbNode()).consecutive_failures >= 2,
      'pushes failing without sshd',
      30000,
      200,
    );
    // The LB keeps be2 in rotation: the drain never reached it.
    expect((await d!.lbWeights())?.get('be2')).to.be.greaterThan(0);
    expect(readFileSync(d!.lab.state.dispatcher_list, 'utf8')).to.match(/^1 sip:127\.34\.0\.12:5060 0 /m);
    await sleep(500);
    await sshd!.start();
    await eventually(
      async () => (await d!.lbWeights())?.get('be2') === 0,
      'be2 drained at the LB',
      30000,
      200,
    );
    // A drain is written disabled (flag 4): the LB's own probing never brings it back.
    expect(readFileSync(d!.lab.state.dispatcher_list, 'utf8')).to.match(/^1 sip:127\.34\.0\.12:5060 4 /m);
    expect((await lbNode()).consecutive_failures).to.equal(0);
  });
});
