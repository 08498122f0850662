/**
 * Rules across fields that a JSON Schema cannot state: unique ids and names, every backend
 * measurable, a lease refreshed at least twice per duration, cron expressions and time zones that parse, maintenance naming a known backend.
 */
import { validateDetailed } from 'node-cron';
import type { ConfigIssue } from './errors.js';
import type { ControllerSection, SchedulesConfig } from './types.js';

export function checkController(c: ControllerSection, issues: ConfigIssue[]): void {
  const setIds = new Set<number>();
  const backendIds = new Map<string, string>();
  c.sets.forEach((set, i) => {
    if (setIds.has(set.id)) issues.push({ path: `sets[${i}].id`, message: `duplicate set id ${set.id}` });
    setIds.add(set.id);
    set.backends.forEach((b, j) => {
      const at = `sets[${i}].backends[${j}]`;
      const prior = backendIds.get(b.id);
      if (prior)
        issues.push({ path: `${at}.id`, message: `duplicate backend id ${b.id} (also at ${prior})` });
      backendIds.set(b.id, at);
      if (!b.agent && !b.ssh)
        issues.push({ path: at, message: 'needs an agent or an ssh section to be measured' });
    });
  });
  const lbNames = new Set<string>();
  c.lb_nodes.forEach((lb, i) => {
    if (lbNames.has(lb.name))
      issues.push({ path: `lb_nodes[${i}].name`, message: `duplicate LB node ${lb.name}` });
    lbNames.add(lb.name);
  });
  checkSchedules(c.schedules, backendIds, issues);
  // One lost refresh must not lapse the lease (and turn the LB's own probing on for nothing).
  if (c.lease.refresh_ms * 2 > c.lease.duration_ms) {
    issues.push({
      path: 'lease.refresh_ms',
      message: `must be at most half of lease.duration_ms (${c.lease.duration_ms}), got ${c.lease.refresh_ms}`,
    });
  }
}

/** Cron expressions are checked here (the schema cannot), and maintenance must name a known backend. */
function checkSchedules(
  schedules: SchedulesConfig,
  backendIds: ReadonlyMap<string, string>,
  issues: ConfigIssue[],
): void {
  const cron = (expr: string | undefined, path: string): void => {
    if (expr === undefined) return;
    const v = validateDetailed(expr);
    if (!v.valid) {
      const why = v.errors.map((e) => `${e.field}: ${e.message}`).join('; ');
      issues.push({ path, message: `not a cron expression (${why || 'unparsable'})` });
    }
  };
  cron(schedules.reconcile, 'schedules.reconcile');
  if (schedules.timezone !== undefined && !isTimeZone(schedules.timezone)) {
    issues.push({ path: 'schedules.timezone', message: `unknown time zone ${schedules.timezone}` });
  }
  schedules.maintenance.forEach((m, i) => {
    const at = `schedules.maintenance[${i}]`;
    cron(m.drain, `${at}.drain`);
    cron(m.undrain, `${at}.undrain`);
    if (!backendIds.has(m.backend)) {
      issues.push({ path: `${at}.backend`, message: `no backend ${m.backend} in sets[].backends` });
    }
  });
}

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}
