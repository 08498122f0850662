/**
 * The agent process: one per backend host, beside its Kamailio.
 *
 * - Answers each authentic, fresh probe at once with a signed report built from the sampler's latest
 *   snapshot (a probe never waits for a collector).
 * - Announces itself with `hello` to the configured controller, repeated with backoff until a
 *   `hello_ack` echoes one of its hellos; announces again if probes stop coming (the controller
 *   restarted and forgot a self-registered backend).
 * - On stop (SIGTERM/SIGINT when `signals` is on) sends `bye` so the controller drains it at once.
 * - Draining: from the config, then SIGUSR1 (drain) / SIGUSR2 (undrain) or `setDraining()`; reports
 *   carry the flag from the next probe on.
 * - Everything it receives that is not an authentic, fresh controller message is dropped and counted
 *   by reason; nothing received can throw out of the datagram handler.
 * - Keys: it signs with its current key and accepts the controller's messages signed with the current
 *   or, during a rotation, the previous one (`previous_key`). SIGHUP (when `reload` is given) re-reads
 *   the config and puts new keys in force without a restart (reload-plan.ts); a file that changes
 *   anything else is refused whole, and the running config stays.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { decodeDatagram, EncodeError, encodeMessage, typeMask, type KeyLookup } from '../heartbeat/codec.js';
import { heartbeatKey, type HeartbeatKey } from '../heartbeat/keys.js';
import { CONTROLLER_SENDS, type HeartbeatMessage, type ProbeMessage } from '../heartbeat/messages.js';
import type { FreshnessLimits } from '../heartbeat/replay.js';
import type { AgentConfig } from '../config/types.js';
import type { BackoffPolicy } from '../util/backoff.js';
import type { Collector } from '../metrics/collector.js';
import { silentLogger, type Logger } from '../util/logger.js';
import { toReportMetrics } from '../metrics/report-metrics.js';
import { Sampler, type CollectorStatus } from '../metrics/sampler.js';
import { emptyMeasurements, type Measurements } from '../metrics/types.js';
import { Announcer } from './announcer.js';
import { agentCollectors } from './collectors.js';
import { ControllerReplay } from './controller-replay.js';
import { DropCounters, type DropCounts } from './drop-counters.js';
import { planAgentReload, type AgentReloadPlan } from './reload-plan.js';

export const AGENT_SOFTWARE = 'sipweigh-agent/0.1';
const ACCEPT_MASK = typeMask(CONTROLLER_SENDS);
/** Copies of `bye` sent (distinct sequence numbers), since one UDP datagram can be lost. */
const BYE_COPIES = 3;
const BYE_SPACING_MS = 20;
/** A drop summary is logged at most this often, and only when something was dropped. */
const DROP_LOG_INTERVAL_MS = 10_000;

export interface AgentOptions {
  /** Install SIGTERM/SIGINT (bye, stop) and SIGUSR1/SIGUSR2 (drain/undrain) handlers. Default true. */
  readonly signals?: boolean;
  /** Replace the collectors built from the config (tests). */
  readonly collectors?: readonly Collector[];
  readonly freshness?: FreshnessLimits;
  readonly helloBackoff?: BackoffPolicy;
  /** Announce again after this long without an authentic probe (default: 20 probe intervals, at least 5 s). */
  readonly silenceBeforeHelloMs?: number;
  /**
   * Re-reads the config file (throws with the reason if it is unusable). With `signals`, SIGHUP calls
   * it and puts the result in force as `reload()` does; without it SIGHUP is ignored with a warning.
   */
  readonly reread?: () => AgentConfig;
}

export interface AgentCounters {
  /** Datagrams that reached the agent's socket. */
  readonly received: number;
  readonly probesAnswered: number;
  readonly hellosSent: number;
  readonly byesSent: number;
  readonly drops: DropCounts;
  readonly dropsTotal: number;
}

export interface AgentHandle {
  readonly bootId: string;
  /** Where probes are answered (the bound address, with the real port if the config said 0). */
  readonly address: { readonly address: string; readonly port: number };
  readonly acknowledged: boolean;
  readonly draining: boolean;
  setDraining(draining: boolean): void;
  /**
   * Puts `next` in force if it changes only the keys (current, previous), or refuses it whole naming
   * the fields that need a restart. Never restarts anything: the backend stays in rotation.
   */
  reload(next: AgentConfig): AgentReloadPlan;
  /** The figures the next report would carry. */
  measurements(): Measurements;
  collectors(): CollectorStatus[];
  counters(): AgentCounters;
  /** Sends bye (unless `sendBye` is false), stops collectors, closes the socket. Idempotent. */
  stop(reason?: string, sendBye?: boolean): Promise<void>;
  /** Resolves once the agent has stopped. */
  readonly closed: Promise<void>;
}

class Agent implements AgentHandle {
  readonly bootId = randomBytes(12).toString('base64url');
  readonly closed: Promise<void>;
  /** The running config: the start one, with the keys of the last reload. */
  private config: AgentConfig;
  /** Current key first (signs everything), then the previous one during a rotation (accepted only). */
  private keys: readonly HeartbeatKey[];
  private readonly lookup: KeyLookup;
  private readonly replay: ControllerReplay;
  private readonly drops = new DropCounters();
  private readonly sampler: Sampler;
  private readonly socket: dgram.Socket;
  private seq = 0;
  private isDraining: boolean;
  private readonly announcer: Announcer;
  private watchTimer: NodeJS.Timeout | undefined;
  private boundAddress: { address: string; port: number } | undefined;
  private lastDropLog = -Infinity;
  private received = 0;
  private probesAnswered = 0;
  private byesSent = 0;
  private stopping: Promise<void> | undefined;
  private resolveClosed!: () => void;
  private readonly removeSignalHandlers: () => void;

  constructor(
    config: AgentConfig,
    private readonly logger: Logger,
    private readonly options: AgentOptions,
  ) {
    this.config = config;
    this.keys = agentKeys(config);
    this.lookup = (backendId) => (backendId === config.backend_id ? this.keys : undefined);
    this.replay = new ControllerReplay(options.freshness);
    this.isDraining = config.draining;
    this.announcer = new Announcer({
      sendHello: () => this.sendHello(),
      logger,
      ...(options.helloBackoff ? { backoff: options.helloBackoff } : {}),
      ...(options.silenceBeforeHelloMs !== undefined ? { silenceMs: options.silenceBeforeHelloMs } : {}),
    });
    this.sampler = new Sampler(options.collectors ?? agentCollectors(config), logger);
    this.socket = dgram.createSocket('udp4');
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.removeSignalHandlers = options.signals === false ? () => undefined : this.installSignalHandlers();
  }

  get address(): { address: string; port: number } {
    // Read once at bind time: a closed socket has no address, and the handle outlives it.
    return this.boundAddress ?? { address: this.config.listen.address, port: this.config.listen.port };
  }

  get acknowledged(): boolean {
    return this.announcer.acknowledged;
  }

  get draining(): boolean {
    return this.isDraining;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.bind(this.config.listen.port, this.config.listen.address, () => {
        this.socket.off('error', reject);
        const a = this.socket.address();
        this.boundAddress = { address: a.address, port: a.port };
        resolve();
      });
    });
    // After bind, socket errors (ICMP unreachable for a report, a full send buffer) are logged, never fatal.
    this.socket.on('error', (e) => this.logger.warn({ err: e.message }, 'heartbeat socket error'));
    this.socket.on('message', (buf, rinfo) => this.onDatagram(buf, rinfo));
    this.sampler.start();
    this.announcer.start();
    this.watchTimer = setInterval(() => this.watch(), 1000);
    this.logger.info(
      {
        backend: this.config.backend_id,
        listen: this.address,
        controller: this.config.controller,
        boot: this.bootId,
      },
      'agent started',
    );
  }

  setDraining(draining: boolean): void {
    if (draining === this.isDraining) return;
    this.isDraining = draining;
    this.logger.info({ draining }, draining ? 'draining: asking for no new calls' : 'no longer draining');
  }

  reload(next: AgentConfig): AgentReloadPlan {
    const plan = planAgentReload(this.config, next);
    if (!plan.ok) return plan;
    if (plan.keys) {
      // Built before anything is swapped: a key the codec refuses throws here, with nothing changed.
      const keys = agentKeys(next);
      this.keys = keys;
      this.config = next;
    }
    return plan;
  }

  measurements(): Measurements {
    return this.sampler.snapshot();
  }

  collectors(): CollectorStatus[] {
    return this.sampler.status();
  }

  counters(): AgentCounters {
    return {
      received: this.received,
      probesAnswered: this.probesAnswered,
      hellosSent: this.announcer.hellosSent,
      byesSent: this.byesSent,
      drops: this.drops.snapshot(),
      dropsTotal: this.drops.total(),
    };
  }

  stop(reason = 'shutdown', sendBye = true): Promise<void> {
    this.stopping ??= this.shutdown(reason, sendBye);
    return this.stopping;
  }

  private async shutdown(reason: string, sendBye: boolean): Promise<void> {
    this.announcer.stop();
    clearInterval(this.watchTimer);
    this.removeSignalHandlers();
    if (sendBye) {
      for (let i = 0; i < BYE_COPIES; i++) {
        if (i > 0) await new Promise((r) => setTimeout(r, BYE_SPACING_MS));
        await this.send({ type: 'bye', ...this.envelope(), reason }, this.config.controller);
        this.byesSent++;
      }
      this.logger.info({ reason, controller: this.config.controller }, 'bye sent');
    }
    await this.sampler.stop();
    await new Promise<void>((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve(); // never bound, or already closed
      }
    });
    this.logger.info({ counters: this.counters() }, 'agent stopped');
    this.resolveClosed();
  }

  private envelope() {
    return { backendId: this.config.backend_id, seq: ++this.seq, ts: Date.now(), boot: this.bootId };
  }

  private onDatagram(buf: Buffer, rinfo: dgram.RemoteInfo): void {
    this.received++;
    try {
      const decoded = decodeDatagram(buf, this.lookup, ACCEPT_MASK);
      if (!decoded.ok) {
        this.drops.count(decoded.reason);
        return;
      }
      const msg = decoded.msg;
      const verdict = this.replay.admit(msg.boot, msg.seq, msg.ts, Date.now());
      if (verdict !== null) {
        this.drops.count(verdict);
        return;
      }
      if (msg.type === 'probe') this.answerProbe(msg, rinfo);
      else if (msg.type === 'hello_ack') {
        // Authentic, but answering none of this run's hellos: an ack meant for an earlier run.
        if (!this.announcer.acknowledge(msg.echoSeq, msg.intervalMs)) this.drops.count('replayed');
      } else this.drops.count('unexpected_type');
    } catch (e) {
      // The codec never throws; this guards the agent against its own bugs, not against input.
      this.drops.count('malformed');
      this.logger.error({ err: e instanceof Error ? e.message : String(e) }, 'datagram handler failed');
    }
  }

  private answerProbe(probe: ProbeMessage, rinfo: dgram.RemoteInfo): void {
    this.announcer.probed();
    const metrics = toReportMetrics(this.sampler.snapshot(), this.config.capacity, this.isDraining);
    // Authentic and fresh, so answering its source cannot be abused for reflection.
    void this.send(
      { type: 'report', ...this.envelope(), echoSeq: probe.seq, echoTs: probe.ts, metrics },
      { address: rinfo.address, port: rinfo.port },
    );
    this.probesAnswered++;
  }

  /** Sends one hello to the configured controller; returns its sequence number. */
  private sendHello(): number {
    const envelope = this.envelope();
    void this.send(helloMessage(this.config, envelope), this.config.controller);
    return envelope.seq;
  }

  /** Once a second: a drop summary (at most every 10 s, only after drops), and the silence check. */
  private watch(): void {
    if (performance.now() - this.lastDropLog >= DROP_LOG_INTERVAL_MS) {
      const dropped = this.drops.takeRecent();
      if (dropped > 0) {
        this.lastDropLog = performance.now();
        this.logger.warn({ dropped, drops: this.drops.snapshot() }, 'datagrams dropped');
      }
    }
    this.announcer.checkSilence();
  }

  private send(msg: HeartbeatMessage, to: { address: string; port: number }): Promise<void> {
    let datagram: Buffer;
    try {
      datagram = encodeMessage(msg, this.keys[0]!);
    } catch (e) {
      const err = e instanceof EncodeError ? e.message : String(e);
      this.logger.error({ type: msg.type, err }, 'could not encode heartbeat message');
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const failed = (err: Error) => {
        this.logger.warn({ type: msg.type, to, err: err.message }, 'heartbeat send failed');
        resolve();
      };
      try {
        this.socket.send(datagram, to.port, to.address, (err) => (err ? failed(err) : resolve()));
      } catch (e) {
        // Thrown at once for a destination Node refuses (a probe's forged source port 0, a closed
        // socket): one lost datagram, never a rejected promise, which would end the process.
        failed(e instanceof Error ? e : new Error(String(e)));
      }
    });
  }

  private installSignalHandlers(): () => void {
    const onStop = (signal: NodeJS.Signals) => {
      this.logger.info({ signal }, 'stopping');
      void this.stop(`signal ${signal}`);
    };
    const onDrain = () => this.setDraining(true);
    const onUndrain = () => this.setDraining(false);
    // SIGHUP's default action ends the process: it is always handled, if only to say it did nothing.
    const onHup = () => this.reloadFromFile();
    process.on('SIGTERM', onStop);
    process.on('SIGINT', onStop);
    process.on('SIGUSR1', onDrain);
    process.on('SIGUSR2', onUndrain);
    process.on('SIGHUP', onHup);
    return () => {
      process.off('SIGTERM', onStop);
      process.off('SIGINT', onStop);
      process.off('SIGUSR1', onDrain);
      process.off('SIGUSR2', onUndrain);
      process.off('SIGHUP', onHup);
    };
  }

  private reloadFromFile(): void {
    if (!this.options.reread) {
      this.logger.warn({ signal: 'SIGHUP' }, 'no config file to re-read: SIGHUP ignored');
      return;
    }
    let plan: AgentReloadPlan;
    try {
      plan = this.reload(this.options.reread());
    } catch (e) {
      this.logger.error(
        { signal: 'SIGHUP', err: e instanceof Error ? e.message : String(e) },
        'config reload refused; the running config stays',
      );
      return;
    }
    if (plan.ok) this.logger.info({ signal: 'SIGHUP', keys: plan.keys }, 'config reloaded');
    else
      this.logger.error(
        { signal: 'SIGHUP', restart: plan.restart },
        'config reload refused (these fields need a restart); the running config stays',
      );
  }
}

type Envelope = { backendId: string; seq: number; ts: number; boot: string };

function agentKeys(config: AgentConfig): HeartbeatKey[] {
  return [config.key, ...(config.previous_key ? [config.previous_key] : [])].map(heartbeatKey);
}

function helloMessage(config: AgentConfig, envelope: Envelope): HeartbeatMessage {
  return {
    type: 'hello',
    ...envelope,
    set: config.set,
    uri: `sip:${config.sip.address}:${config.sip.port}`,
    capacity: config.capacity,
    agent: AGENT_SOFTWARE,
  };
}

/**
 * Throws if the config holds a value the heartbeat protocol cannot carry (the agent config allows a
 * capacity above 1e9 or a set above 2^31 - 1; the wire schema does not). Caught at start with the
 * reason, instead of an agent that runs, logs an encoding error per message and is never heard.
 */
export function checkConfigEncodable(config: AgentConfig): void {
  const envelope = { backendId: config.backend_id, seq: 1, ts: Date.now(), boot: 'config-check' };
  const key = heartbeatKey(config.key);
  const metrics = toReportMetrics(emptyMeasurements(), config.capacity, config.draining);
  try {
    encodeMessage(helloMessage(config, envelope), key);
    encodeMessage({ type: 'report', ...envelope, echoSeq: 1, echoTs: envelope.ts, metrics }, key);
  } catch (e) {
    if (!(e instanceof EncodeError)) throw e;
    throw new Error(`agent config cannot be sent in heartbeat v1 messages: ${e.message}`, { cause: e });
  }
}

/**
 * Starts an agent and resolves once its socket is bound and its first hello is on the way.
 * Rejects (with nothing left running) if the socket cannot be bound, the key is unusable or the
 * config holds a value the protocol cannot carry.
 */
export async function runAgent(
  config: AgentConfig,
  logger: Logger = silentLogger,
  options: AgentOptions = {},
): Promise<AgentHandle> {
  checkConfigEncodable(config);
  const agent = new Agent(config, logger, options);
  try {
    await agent.start();
  } catch (e) {
    await agent.stop('start failed', false).catch(() => undefined);
    throw e;
  }
  return agent;
}
