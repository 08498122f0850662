/**
 * A DMQ partition between two LB nodes on loopback, made with `tc` (root only): an htb root qdisc on
 * `lo` whose default class passes everything, and a class whose queue is a pfifo of limit 0 (every
 * packet classified into it is dropped); u32 filters put UDP between the two DMQ addresses, to the
 * DMQ port, in both directions, into that class. (tc's `action drop` needs act_gact, and the prio
 * qdisc sch_prio: neither loads on every kernel; htb, pfifo and u32 are the common denominator.)
 * The builders and the parser are pure; applyCut/removeCut run tc.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface DmqCut {
  /** The two nodes' DMQ addresses (IPv4) and their DMQ port. */
  readonly a: string;
  readonly b: string;
  readonly port: number;
}

/** The handles: root 1:, pass class 1:1 (pfifo 3:), drop class 1:2 (pfifo 2:, limit 0). */
const DROP_QDISC = '2:';

/** tc's argument lists that make the cut, in order (`tc qdisc del dev lo root` undoes them all). */
export function cutCommands(c: DmqCut, dev = 'lo'): string[][] {
  const filter = (src: string, dst: string) => [
    'filter',
    'add',
    'dev',
    dev,
    'parent',
    '1:',
    'protocol',
    'ip',
    'prio',
    '1',
    'u32',
    'match',
    'ip',
    'protocol',
    '17',
    '0xff',
    'match',
    'ip',
    'src',
    `${src}/32`,
    'match',
    'ip',
    'dst',
    `${dst}/32`,
    'match',
    'ip',
    'dport',
    String(c.port),
    '0xffff',
    'flowid',
    '1:2',
  ];
  return [
    ['qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'htb', 'default', '1', 'r2q', '100000'],
    ['class', 'add', 'dev', dev, 'parent', '1:', 'classid', '1:1', 'htb', 'rate', '100gbit'],
    ['class', 'add', 'dev', dev, 'parent', '1:', 'classid', '1:2', 'htb', 'rate', '100gbit'],
    ['qdisc', 'add', 'dev', dev, 'parent', '1:1', 'handle', '3:', 'pfifo', 'limit', '100000'],
    ['qdisc', 'add', 'dev', dev, 'parent', '1:2', 'handle', DROP_QDISC, 'pfifo', 'limit', '0'],
    filter(c.a, c.b),
    filter(c.b, c.a),
  ];
}

/** `tc qdisc show dev lo` before the cut: true when the root is the device's default (ours to replace). */
export function rootIsDefault(show: string): boolean {
  const root = show.split('\n').find((l) => /\broot\b/.test(l));
  return root === undefined || /^qdisc (noqueue|pfifo_fast|fq_codel|mq) 0: root/.test(root.trim());
}

/** Packets the drop class dropped, from `tc -s qdisc show dev lo`; null when it is not there. */
export function droppedByCut(showStats: string): number | null {
  const lines = showStats.split('\n');
  const i = lines.findIndex((l) => l.startsWith(`qdisc pfifo ${DROP_QDISC} `));
  if (i < 0) return null;
  const m = /dropped (\d+)/.exec(lines[i + 1] ?? '');
  return m ? Number(m[1]) : null;
}

async function tc(args: readonly string[]): Promise<string> {
  const r = await run('tc', [...args], { timeout: 5000 });
  return r.stdout;
}

/**
 * Makes the cut. Refuses when `lo` already has a root qdisc of its own (not ours to replace);
 * a failure half-way removes what was added. Throws when tc cannot do it.
 */
export async function applyCut(c: DmqCut): Promise<void> {
  const before = await tc(['qdisc', 'show', 'dev', 'lo']);
  if (!rootIsDefault(before)) throw new Error(`lo already has a root qdisc: ${before.trim()}`);
  try {
    for (const args of cutCommands(c)) await tc(args);
  } catch (e) {
    await removeCut();
    throw e;
  }
}

/** Packets dropped so far (null when unreadable). */
export async function cutDropped(): Promise<number | null> {
  try {
    return droppedByCut(await tc(['-s', 'qdisc', 'show', 'dev', 'lo']));
  } catch {
    return null;
  }
}

/** Removes the cut (the root qdisc and everything under it), only when it is ours (htb 1:). */
export async function removeCut(): Promise<void> {
  try {
    const show = await tc(['qdisc', 'show', 'dev', 'lo']);
    if (/^qdisc htb 1: root/m.test(show)) await tc(['qdisc', 'del', 'dev', 'lo', 'root']);
  } catch {
    /* nothing to remove, or tc is missing */
  }
}
