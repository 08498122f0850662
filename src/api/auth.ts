/**
 * Bearer-token checks, pure. The comparison hashes both sides first so that it takes the same time
 * whatever the presented token's length or how much of it matches (timingSafeEqual needs equal
 * lengths, and comparing lengths first would leak the token's length).
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export interface AuthSettings {
  /** Null: no token configured; only open reads can succeed. */
  readonly token: string | null;
  /** GETs (other than the probes, which are always open) need no token. */
  readonly readWithoutToken: boolean;
}

/** Who may call a route: anyone (probes), readers (open if configured), or token holders only. */
export type Access = 'open' | 'read' | 'write';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const m = /^Bearer[ ]+([\x21-\x7e]+)[ ]*$/i.exec(header);
  return m ? m[1]! : null;
}

export function tokenMatches(presented: string | null, expected: string | null): boolean {
  if (presented === null || expected === null) return false;
  return timingSafeEqual(digest(presented), digest(expected));
}

export type AuthDecision = { readonly ok: true } | { readonly ok: false; readonly error: string };

export function authorize(access: Access, header: string | undefined, auth: AuthSettings): AuthDecision {
  if (access === 'open' || (access === 'read' && auth.readWithoutToken)) return { ok: true };
  if (auth.token === null) {
    return { ok: false, error: 'this needs the API token, and none is configured (api.token_file)' };
  }
  const presented = bearerToken(header);
  if (presented === null) return { ok: false, error: 'missing bearer token (Authorization: Bearer <token>)' };
  if (!tokenMatches(presented, auth.token)) return { ok: false, error: 'wrong token' };
  return { ok: true };
}
