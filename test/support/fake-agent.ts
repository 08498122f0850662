/**
 * FAKE agent: speaks heartbeat v1 through the real codec, with canned metrics, so the controller side
 * can be tested on real UDP sockets without a Kamailio host. (The real agent is src/agent/.) It checks
 * probes exactly as an agent must: signature, direction, freshness and replay window.
 */
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { decodeDatagram, encodeMessage, typeMask, type DropReason } from '../../src/heartbeat/codec.js';
import { heartbeatKey, type HeartbeatKey } from '../../src/heartbeat/keys.js';
import { CONTROLLER_SENDS, type HeartbeatMessage, type ReportMetrics } from '../../src/heartbeat/messages.js';
import { DEFAULT_FRESHNESS } from '../../src/config/freshness.js';
import { PeerReplayState } from '../../src/heartbeat/replay.js';

export interface FakeAgentOptions {
  backendId: string;
  /** This backend's derived key. */
  key: Buffer;
  controller: { address: string; port: number };
  bindAddress: string;
  set?: number;
  uri?: string;
  capacity?: number;
  /** Send hello every this many ms until acknowledged (0: never send hello). */
  helloEveryMs?: number;
  bootId?: string;
}

export const IDLE_METRICS: ReportMetrics = {
  cpu_util: 0.1,
  mem_used_ratio: 0.2,
  load1: 0.3,
  tm_current: 0,
  dialogs_active: 0,
  req_rate: 0,
  err5xx_rate: 0,
  udp_rx_queue_bytes: 0,
  udp_drops: 0,
  options_rtt_ms: 0.2,
  capacity: 100,
  draining: false,
};

export class FakeAgent {
  readonly key: HeartbeatKey;
  readonly boot: string;
  metrics: ReportMetrics = { ...IDLE_METRICS };
  /** When false the agent receives but does not answer (a hung agent). */
  answering = true;
  probesAnswered = 0;
  acked = false;
  readonly dropped: Partial<Record<DropReason, number>> = {};
  private seq = 0;
  private helloTimer: NodeJS.Timeout | null = null;
  private readonly replay = new PeerReplayState();

  private constructor(
    private readonly socket: Socket,
    readonly opts: FakeAgentOptions,
  ) {
    this.key = heartbeatKey(opts.key);
    this.boot = opts.bootId ?? randomBytes(9).toString('base64url');
    socket.on('message', (buf) => this.onMessage(buf));
    socket.on('error', () => undefined);
  }

  static async start(opts: FakeAgentOptions): Promise<FakeAgent> {
    const s = createSocket('udp4');
    await new Promise<void>((res, rej) => {
      s.once('error', rej);
      s.bind(0, opts.bindAddress, () => res());
    });
    const a = new FakeAgent(s, opts);
    if (opts.helloEveryMs) a.startHello(opts.helloEveryMs);
    return a;
  }

  get address() {
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }

  private startHello(everyMs: number) {
    const tick = () => {
      if (this.acked) return;
      this.sendMsg({
        type: 'hello',
        backendId: this.opts.backendId,
        seq: this.seq++,
        ts: Date.now(),
        boot: this.boot,
        set: this.opts.set ?? 1,
        uri: this.opts.uri ?? 'sip:127.0.3.200:5060',
        capacity: this.opts.capacity ?? 100,
        agent: 'fake-agent/1',
      });
      this.helloTimer = setTimeout(tick, everyMs);
    };
    tick();
  }

  sendBye(): void {
    this.sendMsg({
      type: 'bye',
      backendId: this.opts.backendId,
      seq: this.seq++,
      ts: Date.now(),
      boot: this.boot,
      reason: 'test',
    });
  }

  private sendMsg(m: HeartbeatMessage) {
    this.socket.send(encodeMessage(m, this.key), this.opts.controller.port, this.opts.controller.address);
  }

  private onMessage(buf: Buffer) {
    const d = decodeDatagram(
      buf,
      (id) => (id === this.opts.backendId ? [this.key] : undefined),
      typeMask(CONTROLLER_SENDS),
    );
    if (!d.ok) return this.count(d.reason);
    const m = d.msg;
    const r = this.replay.admit(m.boot, m.seq, m.ts, Date.now(), DEFAULT_FRESHNESS);
    if (r !== null) return this.count(r);
    if (m.type === 'hello_ack') {
      this.acked = true;
      return;
    }
    if (m.type !== 'probe' || !this.answering) return;
    this.probesAnswered++;
    this.sendMsg({
      type: 'report',
      backendId: this.opts.backendId,
      seq: this.seq++,
      ts: Date.now(),
      boot: this.boot,
      echoSeq: m.seq,
      echoTs: m.ts,
      metrics: this.metrics,
    });
  }

  private count(r: DropReason) {
    this.dropped[r] = (this.dropped[r] ?? 0) + 1;
  }

  async close(): Promise<void> {
    if (this.helloTimer) clearTimeout(this.helloTimer);
    await new Promise<void>((res) => this.socket.close(() => res()));
  }
}
