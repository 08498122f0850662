/** The scorer's parameters as the controller config gives them; scoring/ itself reads no config. */
import type { ScoringParams } from '../scoring/params.js';
import { schemaDefaults } from './schema-registry.js';
import type { AdmissionSection, ScoringSection } from './types.js';

/** The scorer's parameters from the controller config's scoring and admission sections. */
export function scoringParamsFrom(
  scoring: ScoringSection,
  admission: Pick<AdmissionSection, 'enabled' | 'headroom'>,
): ScoringParams {
  const { cycle_ms: _cycle, ...params } = scoring;
  return { ...params, admission_enabled: admission.enabled, admission_headroom_ratio: admission.headroom };
}

/**
 * The defaults as schemas/controller-config.schema.json writes them down, each with the reason for
 * it (its `$comment` or description there): the schema is the one place a default lives.
 */
export const DEFAULT_SCORING_PARAMS: ScoringParams = scoringParamsFrom(
  schemaDefaults<ScoringSection>('controller-config', '/properties/scoring'),
  schemaDefaults<AdmissionSection>('controller-config', '/properties/admission'),
);
