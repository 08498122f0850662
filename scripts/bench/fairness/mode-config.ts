/**
 * The controller config of each mode, pure: the lab's generated config with per-source fairness of
 * the admission limit switched on (fair) or off (global: one budget for everybody, today's limiter).
 * Admission control itself stays on in both: only who gets the budget differs.
 */
import type { FairnessMode } from './options.js';

type Config = Record<string, unknown>;

const isRecord = (v: unknown): v is Config => typeof v === 'object' && v !== null && !Array.isArray(v);

export function controllerConfigFor(cfg: Config, mode: FairnessMode): Config {
  const admission = isRecord(cfg.admission) ? cfg.admission : {};
  const fairness = isRecord(admission.fairness) ? admission.fairness : {};
  return {
    ...cfg,
    admission: { ...admission, enabled: true, fairness: { ...fairness, enabled: mode === 'fair' } },
  };
}

/**
 * How many keys of each kind an `htable.dump` of the LB's per-source table holds (`G`, `off`, `adm`,
 * `ref`, `Gtat`...: the part before the first `::`), to show what the controller and the LB wrote.
 */
export function keysByKind(dump: unknown): Record<string, number> {
  const counts: Record<string, number> = {};
  if (!Array.isArray(dump)) return counts;
  for (const bucket of dump) {
    const slots: unknown = isRecord(bucket) ? bucket.slot : undefined;
    if (!Array.isArray(slots)) continue;
    for (const item of slots) {
      if (!isRecord(item) || typeof item.name !== 'string') continue;
      const kind = item.name.split('::')[0] ?? item.name;
      counts[kind] = (counts[kind] ?? 0) + 1;
    }
  }
  return counts;
}
