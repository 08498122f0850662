/** Maps the controller's validated config to heartbeat endpoint options (one place, so defaults live in the schema only). */
import type { ControllerConfig } from '../config/types.js';
import type { ProbeEndpointOptions } from './probe-endpoint.js';

export function endpointOptionsFromConfig(cfg: ControllerConfig): ProbeEndpointOptions {
  const hb = cfg.heartbeat;
  return {
    listen: hb.listen,
    masterKeys: hb.master_keys,
    timing: {
      probeIntervalMs: hb.probe_interval_ms,
      probeTimeoutMs: hb.probe_timeout_ms,
      jitter: hb.probe_jitter,
      maxProbesPerSecond: hb.max_probes_per_s,
    },
    health: {
      downAfterMisses: hb.down_after_misses,
      returnAfterOks: hb.return_after_oks,
      flapHalfLifeMs: hb.flap_half_life_ms,
      flapBaseHoldMs: hb.flap_base_hold_ms,
      flapMaxHoldMs: hb.flap_max_hold_ms,
    },
    freshness: { maxAgeMs: hb.max_message_age_ms, maxFutureMs: hb.max_clock_skew_ms },
    selfRegistrationSets: new Set(cfg.sets.filter((s) => s.self_registration).map((s) => s.id)),
    maxSelfRegistered: hb.max_self_registered,
  };
}
