/** A schema-valid controller section → the controller's config: secrets read, paths resolved, rules checked. */
import { ScoringParamsError, validateScoringParams, type ScoringParams } from '../scoring/params.js';
import { apiConfig } from './api-access.js';
import { checkController } from './cross-checks.js';
import type { ConfigIssue } from './errors.js';
import { rpcConfig } from './rpc-section.js';
import { scoringParamsFrom } from './scoring-params.js';
import { hexKey, readableFile, resolvePath, secret } from './secrets.js';
import type {
  ControllerConfig,
  ControllerSection,
  HeartbeatConfig,
  HeartbeatSection,
  LbNodeConfig,
  AdmissionConfig,
} from './types.js';

function heartbeatConfig(section: HeartbeatSection, baseDir: string, issues: ConfigIssue[]): HeartbeatConfig {
  const current = hexKey(
    secret(section, 'master_key', 'master_key_file', 'heartbeat', baseDir, issues, true),
    'heartbeat.master_key',
    issues,
  );
  const previous = hexKey(
    secret(section, 'previous_master_key', 'previous_master_key_file', 'heartbeat', baseDir, issues, false),
    'heartbeat.previous_master_key',
    issues,
  );
  const {
    master_key: _a,
    master_key_file: _b,
    previous_master_key: _c,
    previous_master_key_file: _d,
    ...rest
  } = section;
  return { ...rest, master_keys: [current, previous].filter((k): k is Buffer => k !== undefined) };
}

function lbNodeConfigs(c: ControllerSection, baseDir: string, issues: ConfigIssue[]): LbNodeConfig[] {
  return c.lb_nodes.map((lb, i) => {
    const list = lb.dispatcher_list;
    const field = `lb_nodes[${i}].dispatcher_list.sftp.private_key_file`;
    return {
      ...lb,
      rpc: rpcConfig(lb.rpc, `lb_nodes[${i}].rpc`, baseDir, issues),
      dispatcher_list: list.sftp
        ? {
            ...list,
            sftp: {
              ...list.sftp,
              private_key_file: readableFile(list.sftp.private_key_file, field, baseDir, issues),
            },
          }
        : list,
    };
  });
}

/** The admission section with every peer's RPC password read. */
function admissionConfig(c: ControllerSection, baseDir: string, issues: ConfigIssue[]): AdmissionConfig {
  const split = c.admission.split;
  const peers = split.peers.map((p, i) => ({
    ...p,
    rpc: rpcConfig(p.rpc, `admission.split.peers[${i}].rpc`, baseDir, issues),
  }));
  return { ...c.admission, split: { ...split, peers } };
}

/** Agentless backends' SSH keys, resolved against the config's directory and checked readable. */
function setConfigs(c: ControllerSection, baseDir: string, issues: ConfigIssue[]): ControllerSection['sets'] {
  return c.sets.map((set, i) => ({
    ...set,
    backends: set.backends.map((b, j) =>
      b.ssh
        ? {
            ...b,
            ssh: {
              ...b.ssh,
              private_key_file: readableFile(
                b.ssh.private_key_file,
                `sets[${i}].backends[${j}].ssh.private_key_file`,
                baseDir,
                issues,
              ),
            },
          }
        : b,
    ),
  }));
}

/** The scoring section and admission{} merged; relations checked by the scorer's own rules. */
function scoringParams(c: ControllerSection, issues: ConfigIssue[]): ScoringParams {
  try {
    return validateScoringParams(scoringParamsFrom(c.scoring, c.admission));
  } catch (e) {
    if (!(e instanceof ScoringParamsError)) throw e;
    for (const problem of e.problems) {
      const field = /^([a-z0-9_]+(?:\.[a-z0-9_]+)*) /.exec(problem)?.[1];
      issues.push({ path: field ? `scoring.${field}` : 'scoring', message: problem });
    }
    return scoringParamsFrom(c.scoring, c.admission);
  }
}

export function controllerConfig(
  c: ControllerSection,
  baseDir: string,
  issues: ConfigIssue[],
): ControllerConfig {
  checkController(c, issues);
  const { api, status_file, ...rest } = c;
  return {
    ...rest,
    heartbeat: heartbeatConfig(c.heartbeat, baseDir, issues),
    sets: setConfigs(c, baseDir, issues),
    lb_nodes: lbNodeConfigs(c, baseDir, issues),
    admission: admissionConfig(c, baseDir, issues),
    scoring: { cycle_ms: c.scoring.cycle_ms, params: scoringParams(c, issues) },
    ...(api !== undefined ? { api: apiConfig(api, baseDir, issues) } : {}),
    ...(status_file !== undefined ? { status_file: resolvePath(baseDir, status_file) } : {}),
  };
}
