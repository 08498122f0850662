/**
 * The controller config's heartbeat section → the probe core's options, in one place. The
 * defaults the core falls back on are the schema's (HEARTBEAT_DEFAULTS), mapped the same way.
 */
import { schemaDefaults } from '../config/schema-registry.js';
import type { ControllerConfig, HeartbeatKeyField, HeartbeatSection } from '../config/types.js';
import type { HealthParams } from '../health/state-machine.js';
import type { FreshnessLimits } from '../heartbeat/replay.js';
import type { HeartbeatTiming } from './probe-core.js';
import type { ProbeEndpointOptions } from './probe-endpoint.js';

/** The heartbeat section's tunables (everything but the address and the keys). */
export type HeartbeatTunables = Omit<HeartbeatSection, 'listen' | HeartbeatKeyField>;

/** As schemas/controller-config.schema.json writes them down: the one place they live. */
export const HEARTBEAT_DEFAULTS: HeartbeatTunables = schemaDefaults<HeartbeatTunables>(
  'controller-config',
  '/properties/heartbeat',
);

/**
 * While a backend is suspect it is probed this many times faster (heartbeat and SSH alike): the
 * suspicion is confirmed or cleared sooner, at a cost bounded to the few suspect backends.
 */
export const SUSPECT_SPEEDUP = 2;

export function timingOf(hb: HeartbeatTunables): Omit<HeartbeatTiming, 'suspectSpeedup'> {
  return {
    probeIntervalMs: hb.probe_interval_ms,
    probeTimeoutMs: hb.probe_timeout_ms,
    jitter: hb.probe_jitter,
    maxProbesPerSecond: hb.max_probes_per_s,
  };
}

export function healthParamsOf(hb: HeartbeatTunables): HealthParams {
  return {
    downAfterMisses: hb.down_after_misses,
    returnAfterOks: hb.return_after_oks,
    flapHalfLifeMs: hb.flap_half_life_ms,
    flapBaseHoldMs: hb.flap_base_hold_ms,
    flapMaxHoldMs: hb.flap_max_hold_ms,
  };
}

export function freshnessOf(hb: HeartbeatTunables): FreshnessLimits {
  return { maxAgeMs: hb.max_message_age_ms, maxFutureMs: hb.max_clock_skew_ms };
}

export const DEFAULT_HEALTH_PARAMS: HealthParams = healthParamsOf(HEARTBEAT_DEFAULTS);

export function endpointOptionsFromConfig(cfg: ControllerConfig): ProbeEndpointOptions {
  const hb = cfg.heartbeat;
  return {
    listen: hb.listen,
    masterKeys: hb.master_keys,
    timing: timingOf(hb),
    health: healthParamsOf(hb),
    freshness: freshnessOf(hb),
    selfRegistrationSets: new Set(cfg.sets.filter((s) => s.self_registration).map((s) => s.id)),
    maxSelfRegistered: hb.max_self_registered,
  };
}
