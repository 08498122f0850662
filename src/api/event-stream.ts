/**
 * GET /api/v1/events: the controller's events as NDJSON, one JSON object per line, each with its
 * `type` and `time` (epoch ms), as they happen; `?history=1` first replays the latest events the
 * controller kept (EVENT_HISTORY). The shape of every line is schemas/api/event.schema.json.
 */
import type { ServerResponse } from 'node:http';
import type { EventListener, StampedEvent } from '../controller/events.js';
import { scrubSecrets } from '../util/logger.js';

/** What the stream needs of the controller's event bus. */
export interface EventSource {
  subscribe(listener: EventListener): () => void;
  history(): readonly StampedEvent[];
}

/**
 * A client that reads slower than the controller tells gets cut off rather than growing the
 * controller's memory without bound: it can reconnect with ?history=1.
 */
export const MAX_BUFFERED_BYTES = 1 << 20;

/** `?history=` of the request target (pure): whether to replay, or why the query is wrong. */
export function historyParam(url: string): { ok: true; history: boolean } | { ok: false; error: string } {
  const q = url.includes('?') ? url.slice(url.indexOf('?') + 1) : '';
  const value = new URLSearchParams(q).get('history');
  if (value === null || value === '0') return { ok: true, history: false };
  if (value === '1') return { ok: true, history: true };
  return { ok: false, error: 'history: must be 0 or 1' };
}

/** Streams events into `res` until the client goes (or the server closes its connections). */
export function streamEvents(res: ServerResponse, source: EventSource, history: boolean): void {
  res.writeHead(200, {
    'Content-Type': 'application/x-ndjson; charset=utf-8',
    'Cache-Control': 'no-store',
    'X-Accel-Buffering': 'no',
  });
  res.flushHeaders();
  const write = (e: StampedEvent): void => {
    if (res.destroyed) return;
    if (res.writableLength > MAX_BUFFERED_BYTES) {
      res.destroy();
      return;
    }
    // The same guard as the log: a secret that travels inside an error message never leaves.
    res.write(`${scrubSecrets(JSON.stringify(e))}\n`);
  };
  if (history) for (const e of source.history()) write(e);
  const unsubscribe = source.subscribe(write);
  res.on('close', unsubscribe);
}
