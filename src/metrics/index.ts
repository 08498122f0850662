/**
 * Public face of the metrics module for the rest of sipweigh: the agent builds its collectors from
 * the parts below; the controller uses the SSH monitor for agentless backends.
 */
export type { Collector, Cadence, Sample } from './collector.js';
export { Sampler, type CollectorStatus } from './sampler.js';
export { type Logger, silentLogger } from '../util/logger.js';
export {
  emptyMeasurements,
  MEASURED_FIELDS,
  type Measurements,
  type MeasuredField,
  type ReportMetrics,
} from './types.js';
export { toReportMetrics } from './report-metrics.js';
export { cpuCollector, loadCollector, memoryCollector, udpSocketCollector } from './host-collectors.js';
export { kamailioRpcCollector, type KamailioStatsRpc } from './kamailio-collector.js';
export { optionsCollector, OptionsPinger } from './options-collector.js';
export { SshBackendMonitor, type SshCollectorOptions, type KamcmdOptions } from './ssh-collector.js';
export { sshCollectorOptions } from './ssh-config.js';
export { SshHostKeyMismatchError, SshNotConnectedError, sha256Fingerprint } from '../util/ssh-session.js';
