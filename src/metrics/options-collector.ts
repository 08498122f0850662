/**
 * Round trip of a SIP OPTIONS to the local Kamailio: the time from our datagram entering its UDP
 * socket's queue to its script answering. It grows with the queue in front of Kamailio's workers, so
 * it warns of overload before transactions or CPU move (KAMAILIO-NOTES: ~0.2 ms at 80 % of capacity,
 * ~3 ms at 95 %, hundreds of ms above capacity).
 *
 * No reply within `replyTimeoutMs` reports `replyTimeoutMs` itself, not null: the true round trip is
 * at least that long, and a lost ping is the strongest overload sign there is (a full receive buffer
 * drops datagrams). Null would read as "unknown" and let a scorer ignore exactly the backend that
 * needs shedding. Null is kept for "could not ping at all": the socket could not be bound, or the
 * kernel answered with port unreachable (nothing listens: Kamailio is down, not slow).
 */
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Collector } from './collector.js';
import type { UdpAddress } from '../util/udp-address.js';
import {
  buildOptions,
  matchOptionsResponse,
  newOptionsTransaction,
  type OptionsTransaction,
} from './sip-options.js';

export interface OptionsCollectorOptions {
  /** Kamailio's SIP UDP socket. */
  readonly target: UdpAddress;
  /** Address to send from (default: the target's address, which is local to the agent). */
  readonly localAddress?: string;
  readonly intervalMs: number;
  /** How long one ping waits for its reply. */
  readonly replyTimeoutMs: number;
}

interface PendingPing {
  readonly tx: OptionsTransaction;
  readonly sentAt: number;
  resolve(rttMs: number): void;
  reject(e: Error): void;
}

export class OptionsPinger {
  private socket: dgram.Socket | undefined;
  private opening: Promise<dgram.Socket> | undefined;
  private pending: PendingPing | undefined;
  private cseq = 0;
  private local: UdpAddress | undefined;

  constructor(
    private readonly target: UdpAddress,
    private readonly localAddress: string = target.address,
  ) {}

  /** Round trip in ms, or `timeoutMs` when no reply came; rejects when the ping could not be made. */
  async ping(timeoutMs: number, signal?: AbortSignal): Promise<{ rttMs: number; answered: boolean }> {
    const socket = await this.open();
    const tx = newOptionsTransaction(++this.cseq);
    const request = buildOptions(tx, this.local ?? { address: this.localAddress, port: 0 }, this.target);
    return new Promise((resolve, reject) => {
      const finish = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.pending = undefined;
      };
      const timer = setTimeout(() => {
        finish();
        resolve({ rttMs: timeoutMs, answered: false });
      }, timeoutMs);
      const onAbort = () => {
        finish();
        reject(new Error('ping aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending = {
        tx,
        sentAt: performance.now(),
        resolve: (rttMs) => {
          finish();
          resolve({ rttMs, answered: true });
        },
        reject: (e) => {
          finish();
          reject(e);
        },
      };
      socket.send(request, (err) => {
        if (err) this.pending?.reject(err);
      });
    });
  }

  close(): void {
    this.pending?.reject(new Error('pinger closed'));
    this.socket?.close();
    this.socket = undefined;
    this.opening = undefined;
  }

  private open(): Promise<dgram.Socket> {
    if (this.socket) return Promise.resolve(this.socket);
    this.opening ??= new Promise<dgram.Socket>((resolve, reject) => {
      const socket = dgram.createSocket(isIPv6(this.target.address) ? 'udp6' : 'udp4');
      const fail = (e: Error) => {
        this.opening = undefined;
        socket.close();
        reject(e);
      };
      socket.once('error', fail);
      socket.bind(0, this.localAddress, () => {
        // Connected: the kernel accepts datagrams only from the target and reports ICMP port
        // unreachable as ECONNREFUSED, so "nothing listens" is told apart from "slow".
        socket.connect(this.target.port, this.target.address, () => {
          socket.off('error', fail);
          socket.on('error', (e: NodeJS.ErrnoException) =>
            this.pending?.reject(
              e.code === 'ECONNREFUSED'
                ? new Error(
                    `nothing listens on ${this.target.address}:${this.target.port} (ICMP port unreachable)`,
                  )
                : e,
            ),
          );
          socket.on('message', (msg) => this.onMessage(msg));
          this.local = { address: this.localAddress, port: socket.address().port };
          this.socket = socket;
          resolve(socket);
        });
      });
    });
    return this.opening;
  }

  private onMessage(msg: Buffer): void {
    const p = this.pending;
    if (p && matchOptionsResponse(msg, p.tx)) p.resolve(performance.now() - p.sentAt);
  }
}

export function optionsCollector(options: OptionsCollectorOptions): Collector {
  const pinger = new OptionsPinger(options.target, options.localAddress);
  let lastRtt: number | undefined;
  return {
    name: 'sip-options',
    fields: ['options_rtt_ms'],
    intervalMs: options.intervalMs,
    timeoutMs: options.replyTimeoutMs + 1000,
    async collect(signal) {
      try {
        const { rttMs, answered } = await pinger.ping(options.replyTimeoutMs, signal);
        lastRtt = rttMs;
        return answered
          ? { values: { options_rtt_ms: rttMs } }
          : {
              values: { options_rtt_ms: rttMs },
              problems: [`no reply within ${options.replyTimeoutMs} ms (reported as a lower bound)`],
            };
      } catch (e) {
        lastRtt = undefined;
        throw e;
      }
    },
    inFlight(elapsedMs) {
      // A ping out longer than the last round trip already says the round trip is at least this long.
      return lastRtt !== undefined && elapsedMs > lastRtt ? { options_rtt_ms: elapsedMs } : undefined;
    },
    close() {
      pinger.close();
    },
  };
}
