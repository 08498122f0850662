/**
 * The API's routes and their matching, pure: (method, path) -> the route and its parameters, or
 * why not (404 unknown path, 405 known path with another method, with the methods it allows).
 */
import { BACKEND_ID_PATTERN } from '../heartbeat/messages.js';
import type { Access } from './auth.js';

export type RouteName =
  | 'healthz'
  | 'readyz'
  | 'metrics'
  | 'status'
  | 'backends'
  | 'backend'
  | 'drain'
  | 'undrain'
  | 'lb_nodes'
  | 'sources'
  | 'events'
  | 'reload';

interface RouteDef {
  readonly name: RouteName;
  readonly method: 'GET' | 'POST';
  readonly pattern: RegExp;
  readonly access: Access;
}

/**
 * One path segment, percent-encoded: backend ids include discovered ones named `host:port` (see
 * BACKEND_ID_PATTERN), which clients send as `10.0.0.5%3A5060`. Decoded and checked in matchRoute.
 */
const ID = '([^/]{1,200})';

export const ROUTES: readonly RouteDef[] = [
  { name: 'healthz', method: 'GET', pattern: /^\/healthz$/, access: 'open' },
  { name: 'readyz', method: 'GET', pattern: /^\/readyz$/, access: 'open' },
  { name: 'metrics', method: 'GET', pattern: /^\/metrics$/, access: 'read' },
  { name: 'status', method: 'GET', pattern: /^\/api\/v1\/status$/, access: 'read' },
  { name: 'backends', method: 'GET', pattern: /^\/api\/v1\/backends$/, access: 'read' },
  { name: 'backend', method: 'GET', pattern: new RegExp(`^/api/v1/backends/${ID}$`), access: 'read' },
  { name: 'drain', method: 'POST', pattern: new RegExp(`^/api/v1/backends/${ID}/drain$`), access: 'write' },
  {
    name: 'undrain',
    method: 'POST',
    pattern: new RegExp(`^/api/v1/backends/${ID}/undrain$`),
    access: 'write',
  },
  { name: 'lb_nodes', method: 'GET', pattern: /^\/api\/v1\/lb-nodes$/, access: 'read' },
  { name: 'sources', method: 'GET', pattern: /^\/api\/v1\/sources$/, access: 'read' },
  { name: 'events', method: 'GET', pattern: /^\/api\/v1\/events$/, access: 'read' },
  { name: 'reload', method: 'POST', pattern: /^\/api\/v1\/reload$/, access: 'write' },
];

export type RouteMatch =
  | { readonly kind: 'route'; readonly name: RouteName; readonly access: Access; readonly id: string | null }
  | { readonly kind: 'not_found' }
  | { readonly kind: 'method_not_allowed'; readonly allow: readonly string[] };

/** `url` is the request target (path and query); the query is ignored. */
export function matchRoute(method: string, url: string): RouteMatch {
  const path = url.split('?', 1)[0] ?? '';
  const allow: string[] = [];
  for (const r of ROUTES) {
    const m = r.pattern.exec(path);
    if (!m) continue;
    const id = m[1] === undefined ? null : backendId(m[1]);
    if (id === undefined) return { kind: 'not_found' };
    if (r.method === method) return { kind: 'route', name: r.name, access: r.access, id };
    allow.push(r.method);
  }
  return allow.length > 0 ? { kind: 'method_not_allowed', allow } : { kind: 'not_found' };
}

/** A percent-encoded path segment as a backend id; undefined when it cannot be one. */
function backendId(segment: string): string | undefined {
  let id: string;
  try {
    id = decodeURIComponent(segment);
  } catch {
    return undefined;
  }
  // Starting with a letter or digit also keeps `.` and `..` out.
  return BACKEND_ID_PATTERN.test(id) && /^[A-Za-z0-9]/.test(id) ? id : undefined;
}
