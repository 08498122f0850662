/**
 * Cost of a weight push against list size, into a real LB on 127.0.7.50: write + reload + verify
 * (and the read before it) for 3 and 500 destinations, through the local file and through SFTP.
 * Every push changes every weight, so each one writes and reloads. The figures are printed for the
 * README; the assertions are only about correctness (every push applied), never about time.
 */
import { expect } from 'chai';
import { DispatcherPusher, type PushDurations } from '../../src/push/pusher.js';
import type { ListFileTransport } from '../../src/push/transports/transport.js';
import { LocalListFile } from '../../src/push/transports/local-file.js';
import { SftpListFile } from '../../src/push/transports/sftp.js';
import { useProcessGroup } from '../support/harness.js';
import { destinations, linesOf, listedLines, testLb, type TestLb } from './push-lb.js';
import { startTestSshd, type TestSshd } from './push-sshd.js';

const PUSHES = 20;

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

describe('integration: push latency against list size', function () {
  this.timeout(300_000);
  const h = useProcessGroup('push-latency');
  let lb: TestLb;
  let sshd: TestSshd;
  const transports: ListFileTransport[] = [];

  before(async function () {
    lb = testLb(h.group, 'lb-latency', '127.0.7.50', destinations(3));
    await lb.start();
    sshd = await startTestSshd(h.group, '127.0.7.51', 2222);
  });
  after(async () => {
    lb?.rpc.client.close();
    await Promise.all(transports.map((t) => t.close()));
  });

  for (const via of ['file', 'sftp'] as const) {
    for (const n of [3, 500]) {
      it(`${n} destinations via ${via}: ${PUSHES} pushes, each applied and verified`, async function () {
        const transport =
          via === 'file'
            ? new LocalListFile({ path: lb.listFile })
            : new SftpListFile({
                ssh: sshd.target,
                path: lb.listFile,
                deadlineMs: 30_000,
                connectTimeoutMs: 20_000,
              });
        transports.push(transport);
        const pusher = new DispatcherPusher({ rpc: lb.rpc, transport });
        // Warm-up: connections (HTTP keep-alive, SSH) and the first list of this size.
        const warm = await pusher.push(destinations(n, (i) => 1 + (i % 100)));
        expect(warm.kind).to.be.oneOf(['applied', 'in_sync']);
        const runs: PushDurations[] = [];
        for (let k = 0; k < PUSHES; k++) {
          const desired = destinations(n, (i) => 1 + ((i + k + 1) % 100));
          const out = await pusher.push(desired);
          expect(out.kind, JSON.stringify(out).slice(0, 500)).to.equal('applied');
          if (out.kind === 'applied') runs.push(out.durations);
        }
        expect(await listedLines(lb.rpc)).to.deep.equal(
          linesOf(destinations(n, (i) => 1 + ((i + PUSHES) % 100))),
        );
        const apply = runs.map((d) => (d.writeMs ?? 0) + (d.reloadMs ?? 0) + (d.verifyMs ?? 0));
        const stat = (xs: number[]) =>
          `p50 ${quantile(xs, 0.5).toFixed(1)} ms, p90 ${quantile(xs, 0.9).toFixed(1)} ms`;
        console.log(
          `      push ${n} via ${via}: write+reload+verify ${stat(apply)}; total (with read) ${stat(runs.map((d) => d.totalMs))}; ` +
            `write ${stat(runs.map((d) => d.writeMs ?? 0))}, reload ${stat(runs.map((d) => d.reloadMs ?? 0))}, verify ${stat(runs.map((d) => d.verifyMs ?? 0))}`,
        );
      });
    }
  }
});
