/**
 * The OpenSIPS LB's dispatcher, as files (pure formatting; writing atomically is the transport's job):
 *
 * - the db_text table `dispatcher` (OpenSIPS's dispatcher reads only from a database; db_text is a
 *   directory of text files, one per table, plus the file `version`);
 * - the generated route file of opensips/sipweigh-lb.cfg, route[SIPWEIGH_SEND_TO]: one literal
 *   send() per destination. send() with a destination held in a variable resolves it per call and
 *   never frees it (OpenSIPS 3.4-4.0, about 300 bytes of pkg memory per message, measured): a literal
 *   destination is resolved once, when the routes are loaded.
 *
 * Table format (OpenSIPS 3.6.8 scripts/dbtext/opensips/dispatcher, table version 9): fields
 * separated by ':', an empty field is NULL, ':' and '\' escaped with '\'. The state column is not
 * read with persistent_state=0 (the snippet's setting, so OpenSIPS never writes the file back):
 * every destination loads active, and the pusher sets the other states over MI afterwards.
 */
import type { Destination } from '../kamailio/dispatcher-list.js';
import { destinationAttrs } from '../kamailio/dispatcher-list.js';

/** The dispatcher table version OpenSIPS 3.4-4.0 checks (`DS_TABLE_VERSION`). */
export const DISPATCHER_TABLE_VERSION = 9;

export const DISPATCHER_TABLE_HEADER =
  'id(int,auto) setid(int) destination(string) socket(string,null) state(int) probe_mode(int) weight(string) priority(int) attrs(string,null) description(string,null)';

/** The db_text `version` file naming the dispatcher table's version. */
export function formatVersionTable(): string {
  return `table_name(string) table_version(int)\ndispatcher:${DISPATCHER_TABLE_VERSION}\n`;
}

/** db_text escaping: '\' and ':' (the field separator), and line breaks. */
export function escapeDbText(value: string): string {
  return value.replace(/[\\:\n\r\t]/g, (c) =>
    c === '\n' ? '\\n' : c === '\r' ? '\\r' : c === '\t' ? '\\t' : `\\${c}`,
  );
}

/**
 * A destination URI the generated send() can name: `sip:<IPv4 or host>:<port>`, explicit port (an
 * empty one would leave "udp:host:" that OpenSIPS cannot parse), no parameters.
 */
const SENDABLE = /^sip:([A-Za-z0-9.-]+):(\d{1,5})$/;

export function sendTarget(uri: string): { host: string; port: number } | null {
  const m = SENDABLE.exec(uri);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1]!, port };
}

function checkDestination(d: Destination): void {
  if (!Number.isInteger(d.setId) || d.setId < 0) throw new Error(`bad set id ${d.setId}`);
  if (sendTarget(d.uri) === null) {
    throw new Error(`destination ${JSON.stringify(d.uri)}: the OpenSIPS LB needs sip:<host>:<port>`);
  }
  if (!Number.isInteger(d.rweight) || d.rweight < 1 || d.rweight > 100) {
    throw new Error(`weight of ${d.uri} must be an integer 1..100, got ${d.rweight}`);
  }
}

/**
 * The table file for `desired`: ids in order from 1, weight = the relative weight, the Kamailio-style
 * attrs (duid, rweight and any extra ones, so discovery reads the same as from a Kamailio list) and
 * the duid as description. Throws on a destination the LB could not use.
 */
export function formatDispatcherTable(desired: readonly Destination[]): string {
  const rows = desired.map((d, i) => {
    checkDestination(d);
    const fields = [
      String(i + 1),
      String(d.setId),
      escapeDbText(d.uri),
      '', // socket: NULL, the LB's only UDP socket
      '0', // state: not read (persistent_state=0)
      '0', // probe_mode
      String(d.rweight),
      String(d.priority ?? 0),
      escapeDbText(destinationAttrs(d)),
      escapeDbText(d.duid),
    ];
    return fields.join(':');
  });
  return `${DISPATCHER_TABLE_HEADER}\n${rows.map((r) => `${r}\n`).join('')}`;
}

/** The distinct send targets of `desired`, in first-seen order. */
export function destinationUris(desired: readonly Destination[]): string[] {
  return [...new Set(desired.map((d) => d.uri).filter((u) => sendTarget(u) !== null))];
}

/**
 * route[SIPWEIGH_SEND_TO] for opensips/sipweigh-lb.cfg: sends to $du with a literal destination
 * and returns 1, or returns -1 for a destination it does not name (the snippet then uses the
 * per-call form and counts it). The stamp is $var(sipweigh_stamp), set by the snippet.
 */
export function formatDestinationsRoute(uris: readonly string[]): string {
  const cases = uris.map((uri) => {
    const t = sendTarget(uri);
    if (t === null) throw new Error(`destination ${JSON.stringify(uri)}: not sip:<host>:<port>`);
    return [
      `\tcase "${uri}":`,
      `\t\tsend("udp:${t.host}:${t.port}", "$var(sipweigh_stamp)");`,
      '\t\treturn(1);',
    ].join('\n');
  });
  return [
    '# written by sipweigh (the OpenSIPS push adapter): changes here are overwritten.',
    '# One literal send() per destination: see opensips/sipweigh-lb.cfg, route SIPWEIGH_SEND_TRANSPARENT.',
    'route[SIPWEIGH_SEND_TO] {',
    ...(cases.length > 0 ? ['\tswitch ($du) {', ...cases, '\t}'] : []),
    '\treturn(-1);',
    '}',
    '',
  ].join('\n');
}
