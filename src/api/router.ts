/**
 * The API's routes and their matching, pure: (method, path) -> the route and its parameters, or
 * why not (404 unknown path, 405 known path with another method, with the methods it allows).
 */
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
  | 'reload';

interface RouteDef {
  readonly name: RouteName;
  readonly method: 'GET' | 'POST';
  readonly pattern: RegExp;
  readonly access: Access;
}

/** A backend id as the config allows it (common.schema.json identifier). */
const ID = '([A-Za-z0-9][A-Za-z0-9._-]{0,62})';

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
    if (r.method === method) return { kind: 'route', name: r.name, access: r.access, id: m[1] ?? null };
    allow.push(r.method);
  }
  return allow.length > 0 ? { kind: 'method_not_allowed', allow } : { kind: 'not_found' };
}
