/**
 * The heartbeat's freshness limits as schemas/controller-config.schema.json writes them down
 * (heartbeat.max_message_age_ms, max_clock_skew_ms): the agent holds the controller's messages to
 * the same limits the controller holds the agent's to, from the one place they live.
 */
import type { FreshnessLimits } from '../heartbeat/replay.js';
import { schemaDefaults } from './schema-registry.js';
import type { HeartbeatSection } from './types.js';

const hb = schemaDefaults<Pick<HeartbeatSection, 'max_message_age_ms' | 'max_clock_skew_ms'>>(
  'controller-config',
  '/properties/heartbeat',
);

export const DEFAULT_FRESHNESS: FreshnessLimits = {
  maxAgeMs: hb.max_message_age_ms,
  maxFutureMs: hb.max_clock_skew_ms,
};
