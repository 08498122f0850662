/**
 * The heartbeat bench's simulated agents: a child process (its own core) that answers every probe of
 * the controller endpoint under test with a signed report, or sends unsolicited reports at a fixed
 * rate (receive-only mode). Driven over IPC by heartbeat.ts.
 */
import { createSocket, type Socket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { encodeJson, readHeader, typeMask } from '../../../src/heartbeat/codec.js';
import { deriveBackendKey, heartbeatKey, type HeartbeatKey } from '../../../src/heartbeat/keys.js';
import type { ReportMetrics } from '../../../src/heartbeat/messages.js';
import { literalLookup } from '../../../src/util/udp-lookup.js';

export const SIM_IPS = ['127.0.3.31', '127.0.3.32', '127.0.3.33', '127.0.3.34'];

export interface SimConfig {
  n: number;
  masterHex: string;
  controller: { address: string; port: number };
}
export type SimToParent =
  { kind: 'ready'; ports: number[] } | { kind: 'stats'; probes: number; reports: number; cpuMs: number };

export const backendId = (i: number) => `bench-${i}`;

export const SIM_METRICS: ReportMetrics = {
  cpu_util: 0.42,
  mem_used_ratio: 0.31,
  load1: 1.5,
  tm_current: 120,
  dialogs_active: 800,
  req_rate: 95.5,
  err5xx_rate: 0.1,
  udp_rx_queue_bytes: 0,
  udp_drops: 0,
  options_rtt_ms: 0.4,
  capacity: 200,
  draining: false,
};

const METRICS_JSON = JSON.stringify(SIM_METRICS);

async function runSimulator(): Promise<void> {
  const cfg = await new Promise<SimConfig>((resolve) =>
    process.once('message', (m) => resolve(m as SimConfig)),
  );
  const master = Buffer.from(cfg.masterHex, 'hex');
  const keys = new Map<string, HeartbeatKey>();
  for (let i = 0; i < cfg.n; i++)
    keys.set(backendId(i), heartbeatKey(deriveBackendKey(master, backendId(i))));
  const boot = 'benchsim' + process.pid;
  let seq = 0;
  let probes = 0;
  let reports = 0;
  const probeMask = typeMask(['probe']);
  const sockets: Socket[] = [];
  for (const ip of SIM_IPS) {
    const s = createSocket({ type: 'udp4', lookup: literalLookup });
    await new Promise<void>((r) => s.bind(0, ip, () => r()));
    try {
      s.setRecvBufferSize(4 << 20);
      s.setSendBufferSize(4 << 20);
    } catch {
      /* capped */
    }
    s.on('message', (buf) => {
      probes++;
      const h = readHeader(buf, probeMask);
      if (!h.ok) return;
      const key = keys.get(h.header.backendId);
      if (!key) return;
      let p: { seq: number; ts: number };
      try {
        p = JSON.parse(buf.toString('latin1', h.header.payloadOffset, h.header.macOffset)) as {
          seq: number;
          ts: number;
        };
      } catch {
        return;
      }
      // Built by hand like the controller's probes, so the simulator stays cheaper than what it measures.
      const json =
        '{"seq":' +
        seq++ +
        ',"ts":' +
        Date.now() +
        ',"boot":"' +
        boot +
        '","echo_seq":' +
        p.seq +
        ',"echo_ts":' +
        p.ts +
        ',"metrics":' +
        METRICS_JSON +
        '}';
      const out = encodeJson('report', h.header.backendId, key, json);
      reports++;
      s.send(out, cfg.controller.port, cfg.controller.address);
    });
    s.on('error', () => undefined);
    sockets.push(s);
  }
  process.send!({ kind: 'ready', ports: sockets.map((s) => s.address().port) } satisfies SimToParent);
  let blaster: NodeJS.Timeout | null = null;
  process.on('message', (m) => {
    const msg = m as { kind?: string; rate?: number };
    if (msg.kind === 'blast') {
      // Receive-only mode: unsolicited reports at a fixed rate, round robin over the backends,
      // each correctly signed with a fresh sequence number, in 1 ms batches over all sockets.
      const perMs = (msg.rate ?? 0) / 1000;
      let due = 0;
      let next = 0;
      const started = performance.now();
      blaster = setInterval(() => {
        const target = Math.floor((performance.now() - started) * perMs);
        // Catch up at most 5 ms worth per tick: if the simulator cannot keep the rate, it sends less
        // (reported as "sent") instead of starving its own event loop.
        due = Math.max(due, target - Math.ceil(5 * perMs));
        for (; due < target; due++) {
          const i = next++ % cfg.n;
          const id = backendId(i);
          const now = Date.now();
          const json =
            '{"seq":' +
            seq++ +
            ',"ts":' +
            now +
            ',"boot":"' +
            boot +
            '","echo_seq":0,"echo_ts":' +
            now +
            ',"metrics":' +
            METRICS_JSON +
            '}';
          reports++;
          sockets[i % sockets.length]!.send(
            encodeJson('report', id, keys.get(id)!, json),
            cfg.controller.port,
            cfg.controller.address,
          );
        }
      }, 1);
      return;
    }
    if (msg.kind === 'peek') {
      const u = process.cpuUsage();
      process.send!({
        kind: 'stats',
        probes,
        reports,
        cpuMs: (u.user + u.system) / 1000,
      } satisfies SimToParent);
      return;
    }
    if (msg.kind !== 'stop') return;
    if (blaster) clearInterval(blaster);
    const u = process.cpuUsage();
    process.send!(
      { kind: 'stats', probes, reports, cpuMs: (u.user + u.system) / 1000 } satisfies SimToParent,
      () => {
        for (const s of sockets) s.close();
        process.exit(0);
      },
    );
  });
  process.on('disconnect', () => process.exit(0));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) void runSimulator();
