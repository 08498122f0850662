/**
 * The shell of lb-socket.ts: reads this host's /proc/net/udp(6) for every LB node that names its
 * `sip_socket`, once a second, and keeps each node's last status for the API and /metrics.
 * Once a second because the kernel's figures are instantaneous (the queue) or cumulative (drops):
 * a scrape every few seconds loses nothing of the counter, and a queue that fills lasts longer.
 * A failed read is a status (unmeasured, with the reason), never an exception out of a timer.
 */
import { networkInterfaces } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { LbNodeConfig } from '../config/types.js';
import { readText, readUdpSocket, type TextReader } from '../metrics/host-collectors.js';
import type { ControllerEvent } from './events.js';
import {
  lbSocketEvents,
  nextLbSocketStatus,
  type HostInterface,
  type LbSocketReading,
  type LbSocketStatus,
} from './lb-socket.js';

const INTERVAL_MS = 1000;

const hostInterfaces = (): HostInterface[] =>
  Object.values(networkInterfaces()).flatMap((list) => list ?? []);

export interface LbSocketWatchOptions {
  readonly intervalMs?: number;
  /** Reads a /proc file; tests point it at fixtures. */
  readonly read?: TextReader;
  readonly interfaces?: () => readonly HostInterface[];
  /** What changed, for the controller's event bus (measured or not, drops began or ended). */
  readonly onEvents?: (events: readonly ControllerEvent[]) => void;
}

export class LbSocketWatch {
  private readonly statuses = new Map<string, LbSocketStatus>();
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly nodes: readonly Pick<LbNodeConfig, 'name' | 'sip_socket'>[],
    private readonly opts: LbSocketWatchOptions = {},
  ) {}

  /** Starts reading (nothing to do when no node names a socket). */
  start(): this {
    if (this.timer || !this.nodes.some((n) => n.sip_socket)) return this;
    this.tick();
    this.timer = setInterval(() => this.tick(), this.opts.intervalMs ?? INTERVAL_MS);
    return this;
  }

  /** Each measured node's last status, by node name (a node without `sip_socket` is absent). */
  status(): ReadonlyMap<string, LbSocketStatus> {
    return this.statuses;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  private tick(): void {
    // A slow read (a host with a huge socket table) is not stacked up behind itself.
    if (this.running) return;
    this.running = this.sample().finally(() => (this.running = null));
  }

  /** Reads every node's socket once; public for tests that step it. */
  async sample(): Promise<void> {
    const read = this.opts.read ?? readText;
    for (const n of this.nodes) {
      const socket = n.sip_socket;
      if (!socket) continue;
      const reading: LbSocketReading = await readUdpSocket(socket, read).then(
        (figures) => ({ figures }),
        (e: unknown) => ({ error: (e as Error).message }),
      );
      const now = { mono: performance.now(), wall: Date.now() };
      const interfaces = (this.opts.interfaces ?? hostInterfaces)();
      const previous = this.statuses.get(n.name) ?? null;
      const next = nextLbSocketStatus(previous, socket, reading, now, interfaces);
      this.statuses.set(n.name, next);
      this.opts.onEvents?.(lbSocketEvents(n.name, previous, next));
    }
  }
}
