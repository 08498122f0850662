/**
 * Memory of the OpenSIPS LB under a long run (issue 15: "OpenSIPS LB RSS after 100,000 calls is
 * within 10 % of its RSS after 10,000"). Real parts on loopback 127.47.x.x: the OpenSIPS LB
 * (opensips/sipweigh-lb.cfg), two Kamailio backends each with a sipp UAS, one sipp UAC.
 *
 * It offers `--calls` calls (default 100,000) at `--rate` calls/s (default 800) in two runs, the first
 * of `--first` calls (default 10,000), and reads after each: the summed RSS of the LB's processes
 * (/proc/<pid>/status VmRSS of the main process and every process in its group) and the pkg memory
 * each process uses (MI get_statistics pkmem:). `--dynamic` starts the LB with an empty destinations
 * route, so every send() takes the per-call form (the OpenSIPS 3.x leak), for comparison.
 * `--ttl S` sets the Call-ID entries' lifetime (default the production 240 s).
 * Bounded: every sipp run has a timeout; everything is stopped by PID at the end, also on failure.
 * Prints figures and a JSON last line. Run under the integration lock:
 *   flock /tmp/sipweigh-it.lock node dist/scripts/opensips-rss.js [--calls N] [--first N] [--rate R] [--dynamic]
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LAB_SCENARIOS } from '../src/lab/scenarios.js';
import { OSIPS_NET, startOsipsPlane, startOsipsUases } from '../src/lab/opensips-dataplane.js';
import { ProcessGroup } from '../src/lab/processes.js';
import { runSippClient } from '../src/lab/sipp.js';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} takes a positive whole number`);
  return v;
}

/** VmRSS in kB of every process whose process group is `pgid` (the LB runs in its own group). */
export function groupRssKb(pgid: number): { kb: number; pssKb: number; processes: number } {
  let kb = 0;
  let pssKb = 0;
  let processes = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) !== pgid) continue;
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'));
      if (m) {
        kb += Number(m[1]);
        processes++;
        // Pss shares each shared page (OpenSIPS's shm) among its users: the sum counts it once.
        const pss = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${entry}/smaps_rollup`, 'utf8'));
        if (pss) pssKb += Number(pss[1]);
      }
    } catch {
      /* gone meanwhile */
    }
  }
  return { kb, pssKb, processes };
}

async function main(): Promise<number> {
  const calls = arg('--calls', 100000);
  const first = arg('--first', 10000);
  const rate = arg('--rate', 800);
  const dynamic = process.argv.includes('--dynamic');
  // The Call-ID entries' lifetime (the snippet's sipweigh_invite_ttl, 240 s in production): entries
  // live rate x TTL, so with 240 s the cache is still filling at 10,000 calls and RSS grows with it,
  // leak or not. A short TTL reaches the steady state early and isolates what grows per call.
  const ttl = arg('--ttl', 240);
  if (first >= calls) throw new Error('--first must be below --calls');
  const group = new ProcessGroup(mkdtempSync(join(tmpdir(), 'sipweigh-opensips-rss-')));
  const stop = () => group.stopAll();
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    const plane = await startOsipsPlane(group, [{ weight: 50 }, { weight: 50 }], {
      literalSends: !dynamic,
      shmMb: 256,
    });
    await plane.mi.call('shv_set', { name: 'sipweigh_invite_ttl', type: 'int', value: ttl });
    await plane.mi.call('shv_set', {
      name: 'sipweigh_non_invite_ttl',
      type: 'int',
      value: Math.min(ttl, 40),
    });
    await startOsipsUases(group, plane, { scenario: LAB_SCENARIOS.uas, tag: 'rss', timeoutS: 3600 });
    const pid = plane.lb.process.pid;
    const pkg = async (): Promise<number> => {
      const r = (await plane.mi.call('get_statistics', { statistics: ['pkmem:'] })) as Record<
        string,
        unknown
      >;
      return Object.entries(r)
        .filter(([k]) => k.endsWith('-used_size'))
        .reduce((a, [, v]) => a + Number(v), 0);
    };
    const sample = async (label: string, done: number) => {
      const rss = groupRssKb(pid);
      const s = {
        label,
        calls: done,
        rss_kb: rss.kb,
        pss_kb: rss.pssKb,
        processes: rss.processes,
        pkg_used_bytes: await pkg(),
      };
      console.log(
        `${label.padEnd(8)} after ${String(done).padStart(7)} calls: RSS ${(rss.kb / 1024).toFixed(1)} MB over ${rss.processes} processes (Pss ${(rss.pssKb / 1024).toFixed(1)} MB), pkg used ${(s.pkg_used_bytes / 1024).toFixed(0)} kB`,
      );
      return s;
    };
    const start = await sample('start', 0);
    let offered = 0;
    let failed = 0;
    const run = async (name: string, n: number) => {
      const r = await runSippClient(group, {
        name,
        scenario: LAB_SCENARIOS.uac,
        localIp: OSIPS_NET.clientIp(0),
        localPort: 5090,
        remote: `${OSIPS_NET.lbIp}:${OSIPS_NET.sipPort}`,
        rate,
        maxCalls: n,
        // Bounded: twice the time the calls take at the rate, plus a minute.
        timeoutS: Math.ceil((2 * n) / rate) + 60,
      });
      offered += n;
      failed += r.stats.failed;
      console.log(`  ${name}: ${r.stats.successful} of ${n} calls completed, ${r.stats.failed} failed`);
    };
    await run('uac-first', first);
    const atFirst = await sample('first', offered);
    await run('uac-rest', calls - first);
    const atEnd = await sample('end', offered);
    const growth = (atEnd.rss_kb - atFirst.rss_kb) / atFirst.rss_kb;
    console.log(
      `RSS growth from ${first} to ${calls} calls: ${(growth * 100).toFixed(1)} % (${dynamic ? 'per-call send() destinations' : 'literal send() destinations'}); pkg used grew by ${((atEnd.pkg_used_bytes - atFirst.pkg_used_bytes) / 1024).toFixed(0)} kB`,
    );
    console.log(
      JSON.stringify({
        bench: 'opensips-rss',
        mode: dynamic ? 'dynamic' : 'literal',
        rate,
        ttl_s: ttl,
        calls,
        failed,
        samples: [start, atFirst, atEnd],
        rss_growth_ratio: growth,
      }),
    );
    return failed === 0 || failed < calls / 1000 ? 0 : 1;
  } finally {
    await stop();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`opensips-rss failed: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
