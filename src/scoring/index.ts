/** Scoring: heartbeat reports -> derated capacities -> Kamailio rweights per set, panic and admission figures. */
export * from './types.js';
export {
  ScoringParamsError,
  validateScoringParams,
  type ScoringParams,
  type SignalParams,
} from './params.js';
export { initialScorerState, scoreCycle } from './scorer.js';
export { admissionLimit, poolCapacity } from './admission.js';
export { panicCheck, type PanicCheck, type PanicMember } from './panic.js';
export { liveWeight, stepWeight, targetWeights } from './weights.js';
export { rampRatio } from './slow-start.js';
export { FRESH_DERATING, updateFactor, type PressureRange } from './derating.js';
export { ewmaAlpha, ewmaFold } from './smoothing.js';
export { PRESSURE_CAP, dropsPerSecond, pressureRange, reportSignals, tightest } from './signals.js';
export { takeoverState, type TakeoverSeed } from './takeover.js';
export { CAPACITY_RULES, type CapacityRule, type CapacityMoves } from './capacity/estimator.js';
