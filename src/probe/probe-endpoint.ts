/**
 * The controller's probe endpoint: ProbeCore bound to one UDP socket and one timer for the agents,
 * and to one SSH poller per agentless backend (ssh-poller.ts). Everything that decides is in the
 * core and agentless.ts; this file only moves bytes and wakes the core up.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { literalLookup } from '../util/udp-lookup.js';
import type { UdpAddress } from '../util/udp-address.js';
import { DEFAULT_OVERLOAD, nextProbeCap, type OverloadParams } from './overload.js';
import { DEFAULT_TIMING, ProbeCore, type ProbeCoreOptions, type ProbeEvents } from './probe-core.js';
import { SshPollers, type SshPollerOptions } from './ssh-poller.js';

export interface ProbeEndpointOptions extends ProbeCoreOptions {
  readonly listen: UdpAddress;
  /** Overload protection (overload.ts); `false` turns it off. */
  readonly overload?: Partial<OverloadParams> | false;
  /** How often the event-loop utilisation is sampled for it. */
  readonly overloadSampleMs?: number;
  /** Requested SO_RCVBUF/SO_SNDBUF (the kernel may cap it at net.core.rmem_max). */
  readonly socketBufferBytes?: number;
  /** Agentless backends' SSH probes (session timing, key reading); defaults suit production. */
  readonly ssh?: SshPollerOptions;
}

export class ProbeEndpoint {
  readonly core: ProbeCore;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private closed = false;
  private overloadTimer: NodeJS.Timeout | null = null;
  private readonly ssh: SshPollers;

  private constructor(
    private readonly socket: Socket,
    opts: ProbeEndpointOptions,
    events: ProbeEvents,
  ) {
    const onSent = (err: Error | null) => {
      if (err) this.core.sendFailed();
    };
    this.core = new ProbeCore(
      opts,
      (buf, to) => {
        try {
          this.socket.send(buf, to.port, to.address, onSent);
        } catch {
          this.core.sendFailed();
        }
      },
      events,
    );
    this.core.onScheduleChange = () => this.arm();
    const timing = { ...DEFAULT_TIMING, ...opts.timing };
    this.ssh = new SshPollers(this.core, {
      jitter: timing.jitter,
      suspectSpeedup: timing.suspectSpeedup,
      ...(opts.random ? { random: opts.random } : {}),
      ...opts.ssh,
    });
    this.core.onAgentlessChange = (id) => this.ssh.sync(id);
    socket.on('message', (buf: Buffer, rinfo: RemoteInfo) => {
      try {
        this.core.receive(buf, rinfo);
      } catch {
        // The core never throws on input by design; if a bug makes it, one datagram is lost, not the controller.
        this.core.counters.internalErrors++;
      }
      this.arm();
    });
    // A UDP socket reports ICMP errors etc. as 'error'; never let that kill the controller.
    socket.on('error', () => this.core.sendFailed());
    if (opts.overload !== false)
      this.watchOverload({ ...DEFAULT_OVERLOAD, ...opts.overload }, opts.overloadSampleMs ?? 500);
  }

  /** Samples event-loop utilisation and caps the probe rate while we are the bottleneck. */
  private watchOverload(params: OverloadParams, everyMs: number): void {
    let lastElu = performance.eventLoopUtilization();
    let lastSent = this.core.counters.probesSent;
    let lastAt = performance.now();
    this.overloadTimer = setInterval(() => {
      const elu = performance.eventLoopUtilization(lastElu);
      lastElu = performance.eventLoopUtilization();
      const now = performance.now();
      const sentPerS = ((this.core.counters.probesSent - lastSent) * 1000) / Math.max(1, now - lastAt);
      lastSent = this.core.counters.probesSent;
      lastAt = now;
      const cap = nextProbeCap(
        this.core.probeCapPerSecond,
        elu.utilization,
        sentPerS,
        this.core.wantedProbesPerSecond,
        params,
      );
      if (cap !== this.core.probeCapPerSecond) {
        this.core.setProbeCap(cap);
        this.core.counters.probeCapChanges++;
      }
    }, everyMs);
    this.overloadTimer.unref();
  }

  static async start(opts: ProbeEndpointOptions, events: ProbeEvents = {}): Promise<ProbeEndpoint> {
    const socket = createSocket({ type: 'udp4', reuseAddr: false, lookup: literalLookup });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(opts.listen.port, opts.listen.address, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    const want = opts.socketBufferBytes ?? 4 * 1024 * 1024;
    try {
      socket.setRecvBufferSize(want);
      socket.setSendBufferSize(want);
    } catch {
      // Capped or refused by the kernel: the default still works, at lower burst tolerance.
    }
    const ep = new ProbeEndpoint(socket, opts, events);
    ep.arm();
    return ep;
  }

  get address(): UdpAddress {
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }

  /** Agentless backends being probed over SSH. */
  get sshPollers(): number {
    return this.ssh.size;
  }

  get recvBufferBytes(): number {
    return this.socket.getRecvBufferSize();
  }

  /** Re-arms the timer for the core's schedule (the core asks for it when a backend starts being probed). */
  arm(): void {
    if (this.closed) return;
    const due = this.core.nextDue;
    if (due === Infinity) return;
    if (this.timer !== null && this.timerAt <= due) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerAt = due;
    const delay = Math.max(0, due - performance.now());
    this.timer = setTimeout(this.fire, delay);
  }

  private readonly fire = (): void => {
    this.timer = null;
    this.timerAt = Infinity;
    if (this.closed) return;
    try {
      this.core.tick();
    } catch {
      this.core.counters.internalErrors++;
    }
    this.arm();
  };

  async close(): Promise<void> {
    this.closed = true;
    if (this.overloadTimer !== null) clearInterval(this.overloadTimer);
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.core.onAgentlessChange = null;
    await this.ssh.close();
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}
