/**
 * Request bodies: read with a size limit, parse as JSON, check against the route's schema. Every
 * refusal is a reason for a 400 answer naming what was wrong; nothing here throws at the caller.
 */
import type { IncomingMessage } from 'node:http';
import { apiValidator, describeBodyError, type ApiSchemaName } from './schemas.js';

/** Larger than any body the API takes (a drain reason is at most 200 characters). */
export const MAX_BODY_BYTES = 4096;

export type BodyRead =
  { readonly ok: true; readonly text: string } | { readonly ok: false; readonly error: string };

export function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<BodyRead> {
  return new Promise((resolve) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      resolve({ ok: false, error: `body: too large (${declared} bytes, at most ${limit})` });
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limit) {
        done = true;
        resolve({ ok: false, error: `body: too large (more than ${limit} bytes)` });
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (!done) resolve({ ok: true, text: Buffer.concat(chunks).toString('utf8') });
      done = true;
    });
    req.on('error', (e) => {
      if (!done) resolve({ ok: false, error: `body: ${e.message}` });
      done = true;
    });
  });
}

export type BodyCheck<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

/** An empty body is `empty`; anything else must be JSON that the schema accepts. */
export function parseBody<T>(text: string, schema: ApiSchemaName, empty: T): BodyCheck<T> {
  if (text.trim() === '') return { ok: true, value: empty };
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    return { ok: false, error: `body: not JSON (${(e as Error).message})` };
  }
  const validate = apiValidator(schema);
  if (!validate(data)) return { ok: false, error: describeBodyError(validate.errors?.[0]) };
  return { ok: true, value: data as T };
}
