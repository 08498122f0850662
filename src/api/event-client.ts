/**
 * A reader of GET /api/v1/events: connects with the bearer token, splits the NDJSON stream into
 * events and hands each to `onEvent`. For the demo, the benches and tests: they follow what the
 * controller does through its API, never through its log.
 */
import { request, type ClientRequest } from 'node:http';
import type { StampedEvent } from '../controller/events.js';

export interface EventFollower {
  /** Resolves once the stream answered 200 (rejects on any other answer or a refused connection). */
  readonly ready: Promise<void>;
  /** Resolves when the stream ended (closed by either side). */
  readonly ended: Promise<void>;
  close(): void;
}

export interface FollowOptions {
  /** Base URL of the controller API (`http://host:port`). */
  readonly url: string;
  readonly token: string | null;
  /** First replay the events the controller kept (`?history=1`). */
  readonly history?: boolean;
  /** A line that is not a JSON object with a `type` (never expected) goes here, not to onEvent. */
  readonly onBadLine?: (line: string) => void;
}

/** Splits a byte stream into lines; keeps a partial last line for the next chunk (pure state). */
export class LineSplitter {
  private partial = '';

  push(chunk: string): string[] {
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop() ?? '';
    return lines.filter((l) => l.trim() !== '');
  }
}

export function followEvents(opts: FollowOptions, onEvent: (e: StampedEvent) => void): EventFollower {
  let req: ClientRequest | null = null;
  let endStream: () => void = () => undefined;
  const ended = new Promise<void>((resolve) => (endStream = resolve));
  const ready = new Promise<void>((resolve, reject) => {
    const target = new URL(`/api/v1/events${opts.history ? '?history=1' : ''}`, opts.url);
    req = request(target, {
      headers: opts.token === null ? {} : { authorization: `Bearer ${opts.token}` },
    });
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`GET ${target.pathname}: HTTP ${res.statusCode ?? '?'}`));
        res.resume();
        endStream();
        return;
      }
      resolve();
      const lines = new LineSplitter();
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        for (const line of lines.push(chunk)) {
          let e: unknown;
          try {
            e = JSON.parse(line);
          } catch {
            e = null;
          }
          if (typeof e === 'object' && e !== null && typeof (e as { type?: unknown }).type === 'string')
            onEvent(e as StampedEvent);
          else opts.onBadLine?.(line);
        }
      });
      res.on('close', endStream);
      res.on('error', endStream);
    });
    req.on('error', (e) => {
      reject(e);
      endStream();
    });
    req.end();
  });
  // A caller that only awaits `ended` must not see an unhandled rejection.
  ready.catch(() => undefined);
  return {
    ready,
    ended,
    close: () => {
      req?.destroy();
      endStream();
    },
  };
}
