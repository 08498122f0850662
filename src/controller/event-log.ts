/**
 * The controller's log: one line per event, the readable words in one place. Pure mapping
 * (`logLineOf`), and the subscriber that writes it. The log is for people; programs read the events.
 */
import type { Logger } from '../util/logger.js';
import type { ControllerEvent, EventBus } from './events.js';

export interface LogLine {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly fields: object;
  readonly msg: string;
}

const line = (level: LogLine['level'], fields: object, msg: string): LogLine => ({ level, fields, msg });

/** The log line of an event (null: not logged, e.g. a read that found the LB in sync). */
export function logLineOf(e: ControllerEvent): LogLine | null {
  switch (e.type) {
    case 'controller_started':
      return line(
        'info',
        { heartbeat: e.heartbeat, lb_nodes: e.lb_nodes, backends: e.backends, admission: e.admission },
        'controller started',
      );
    case 'controller_stopped':
      return line('info', {}, 'controller stopped; the LB keeps its last weights');
    case 'weights_changed':
      return line(
        'info',
        { set: e.set, mode: e.mode, pool_cps: e.pool_cps, backends: e.backends },
        'weights',
      );
    case 'backend_health':
      return line('info', { backend: e.backend, set: e.set, from: e.from, to: e.to }, 'backend health');
    case 'backend_registered':
      return line('info', { backend: e.backend, set: e.set, uri: e.uri }, 'backend registered itself');
    case 'backend_forgotten':
      return line('info', { backend: e.backend }, 'self-registered backend forgotten after silence');
    case 'backend_drained':
      return line(
        'info',
        { backend: e.backend, ...(e.reason !== null ? { reason: e.reason } : {}) },
        e.drained ? 'backend drained by operator' : 'backend undrained by operator',
      );
    case 'sample_rejected':
      return line('warn', { backend: e.backend, reason: e.reason }, 'sample rejected by scorer');
    case 'set_waiting':
      return line('info', { set: e.set }, 'waiting for the first reports of the set');
    case 'panic_started':
      return line(
        'error',
        { set: e.set, healthy: e.healthy, counted: e.counted, threshold: e.threshold },
        'PANIC: most of the set looks down at once; suspecting the observer, keeping the last weights',
      );
    case 'panic_ended':
      return line('warn', { set: e.set }, 'panic over: the set is scored again');
    case 'discovery':
      return line('info', { added: e.added, removed: e.removed }, 'discovery');
    case 'discovery_problem':
      return line('warn', { node: e.node, kind: e.kind, detail: e.detail }, 'discovery');
    case 'lb_list_unreadable':
      return line('warn', { node: e.node, err: e.error }, 'cannot read the LB dispatcher list');
    case 'node_blocked':
      return line('error', { node: e.node, sets: e.sets }, `not pushing to ${e.node}: ${e.reason}`);
    case 'node_unblocked':
      return line('info', { node: e.node }, 'LB node unblocked');
    case 'node_push':
      return pushLine(e);
    case 'node_reachable':
      return line('info', { node: e.node }, e.again ? 'LB node reachable again, in sync' : 'LB node in sync');
    case 'node_unreachable':
      return line(
        'warn',
        { node: e.node, reason: e.error },
        'LB node unreachable; it keeps its last weights',
      );
    case 'admission_applied':
      return line('info', { node: e.node, limits: e.limits }, 'admission limits set');
    case 'admission_cleared':
      return line('info', { node: e.node, sets: e.sets }, 'admission off: limits lifted at the LB');
    case 'admission_missing':
      return line(
        'warn',
        { node: e.node, sets: e.sets },
        'admission limiters missing: the LB config lacks SIPWEIGH_ADMISSION_CONTROL',
      );
    case 'admission_failed':
      return line('warn', { node: e.node, reason: e.error }, 'admission limit not set');
    case 'source_limited':
      return line(
        'info',
        { node: e.node, set: e.set, source: e.source, offered_cps: e.offered_cps, share_cps: e.share_cps },
        'source over its fair share: refused first while the set is saturated',
      );
    case 'source_released':
      return line(
        'info',
        { node: e.node, set: e.set, source: e.source },
        'source within its fair share again',
      );
    case 'source_groups_loaded':
      return line(
        'info',
        { node: e.node, groups: e.groups, networks: e.networks },
        'source groups loaded at the LB',
      );
    case 'node_demand_failed':
      return line('warn', { node: e.node, reason: e.error }, 'admission split: LB node demand not read');
    case 'node_demand_ok':
      return line('info', { node: e.node }, 'admission split: LB node demand read again');
    case 'admission_split':
      return line('info', { fractions: e.fractions }, 'admission limit split over the LB nodes changed');
    case 'source_shares_ok':
      return line('info', { node: e.node }, 'fair admission: LB updated again');
    case 'source_shares_missing':
      return line(
        'warn',
        { node: e.node },
        'the LB has no sipweigh_src table: fair admission needs the current kamailio/sipweigh-lb.cfg',
      );
    case 'source_shares_failed':
      return line(
        'warn',
        { node: e.node, stage: e.stage, reason: e.error },
        'fair admission: LB not updated',
      );
    case 'config_reloaded':
      return line(
        'info',
        { trigger: e.trigger, file: e.file, changes: e.changes, unchanged: e.unchanged },
        'config reloaded',
      );
    case 'config_reload_refused':
      return line(
        'error',
        { trigger: e.trigger, file: e.file, err: e.error },
        'config reload refused; the running config stays',
      );
    case 'evidence_suspect':
      return line(
        'info',
        { backend: e.backend, set: e.set, retransmissions: e.retransmissions },
        'calls to the backend are being retransmitted and it has not answered since: suspect, probed faster',
      );
    case 'lb_backstop_on':
      return line('warn', { node: e.node }, 'LB lease lapsed: the LB probes its destinations on its own');
    case 'lb_backstop_off':
      return line(
        'info',
        { node: e.node },
        'LB lease back: its own probing is off, the controller takes over',
      );
    case 'lease_refresh_failed':
      return line(
        'warn',
        { node: e.node, err: e.error },
        'cannot refresh the lease at the LB (counted until it recovers)',
      );
    case 'lease_refresh_recovered':
      return line('info', { node: e.node }, 'lease refreshed at the LB again');
    case 'lease_withheld':
      return line(
        'warn',
        { node: e.node, reason: e.reason },
        e.reason === 'not_scored'
          ? 'no cycle scored for longer than the lease: the lease lapses, the LB probes on its own'
          : 'every apply at the LB fails for longer than the lease: the lease lapses, the LB probes on its own',
      );
    case 'lease_resumed':
      return line('info', { node: e.node }, 'the controller acts on the LB again: lease refreshed');
    case 'lb_evidence_read_failed':
      return line(
        'warn',
        { node: e.node, err: e.error },
        'cannot read the LB evidence (counted until it recovers)',
      );
    case 'lb_evidence_read_recovered':
      return line('info', { node: e.node }, 'LB evidence read again');
    case 'lb_evidence_unsupported':
      return line(
        'info',
        { node: e.node, err: e.error },
        'the LB keeps no evidence table (older snippet): no passive evidence from it',
      );
    case 'lb_socket_measured':
      return line(
        'info',
        { node: e.node, socket: e.socket },
        "LB socket measured (the LB's own receive queue and drops)",
      );
    case 'lb_socket_unmeasured':
      return line('warn', { node: e.node, socket: e.socket, reason: e.reason }, 'LB socket not measured');
    case 'lb_socket_dropping':
      return line(
        'warn',
        { node: e.node, socket: e.socket, drops_per_s: e.drops_per_s, rx_queue_bytes: e.rx_queue_bytes },
        "the LB's SIP socket is full: the kernel drops requests before the LB reads them",
      );
    case 'lb_socket_drops_ended':
      return line(
        'info',
        { node: e.node, socket: e.socket, dropped: e.dropped },
        'LB socket no longer dropping',
      );
    case 'cycle_failed':
      return e.stage === 'scoring'
        ? line('error', { err: e.error }, 'scoring failed; weights left as they are')
        : line('error', { err: e.error }, 'cycle failed; the LB keeps its last weights');
    case 'status_file_error':
      return line('warn', { file: e.file, err: e.error }, 'cannot write the status file');
    case 'schedule_failed':
      return line('warn', { job: e.job, err: e.error }, 'scheduled job failed');
    case 'api_error':
      return e.stage === 'server'
        ? line('error', { err: e.error }, 'API server error')
        : line('error', { err: e.error, url: e.url, method: e.method }, 'API handler failed');
  }
}

function pushLine(e: Extract<ControllerEvent, { type: 'node_push' }>): LogLine | null {
  if (e.outcome === 'applied') {
    return line(
      'info',
      { node: e.node, ...(e.drift_repaired ? { drift_repaired: true } : {}), changes: e.changes, ms: e.ms },
      'dispatcher list pushed and verified',
    );
  }
  if (e.outcome === 'in_sync') return null;
  if (e.stage === 'apply') {
    return line(
      'warn',
      { node: e.node, reason: e.error ?? '', failures: e.failures },
      'LB node apply failed',
    );
  }
  return line(
    'warn',
    { node: e.node, stage: e.stage, reason: e.error, failures: e.failures },
    'push failed; the LB keeps its last good weights',
  );
}

/** Writes every event of `bus` to `logger`; returns the unsubscribe function. */
export function logEvents(bus: EventBus, logger: Logger): () => void {
  return bus.subscribe((e) => {
    const l = logLineOf(e);
    if (l) logger[l.level](l.fields, l.msg);
  });
}
