/**
 * What an agent config reload (SIGHUP) would change, pure: (running config, new config) -> either
 * "put the keys in force" or the fields that need a restart. Only the keys change live: they are
 * what a key rotation moves (docs/deploy.md), and moving them must not take the backend out of
 * rotation, as a restart (bye, drain, confirmation) would. Like the controller's reload, all or
 * nothing: a file that also changes anything else is refused whole, naming fields, never values.
 */
import { isDeepStrictEqual } from 'node:util';
import type { AgentConfig } from '../config/types.js';

export type AgentReloadPlan =
  { readonly ok: true; readonly keys: boolean } | { readonly ok: false; readonly restart: readonly string[] };

const LIVE_FIELDS: ReadonlySet<string> = new Set(['key', 'previous_key']);

export function planAgentReload(running: AgentConfig, next: AgentConfig): AgentReloadPlan {
  const a = running as unknown as Record<string, unknown>;
  const b = next as unknown as Record<string, unknown>;
  const fields = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  const differs = (f: string) => !isDeepStrictEqual(a[f], b[f]);
  const restart = fields.filter((f) => !LIVE_FIELDS.has(f) && differs(f));
  if (restart.length > 0) return { ok: false, restart };
  return { ok: true, keys: [...LIVE_FIELDS].some(differs) };
}
