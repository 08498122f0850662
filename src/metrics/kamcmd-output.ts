/**
 * kamcmd's text rendering of an RPC reply, turned back into the JSON shapes the stats parsers take.
 *
 *   {                         an RPC struct: one "name: value" per line, tab-indented
 *   	current: 0
 *   	now: Wed Nov 25 00:10:09 2026
 *   }
 *   error: 500 - command no.such not found     an RPC error (kamcmd still exits 0)
 *
 * Only flat structs are needed (tm.stats, dlg.stats_active, stats.fetchn); a nested struct is an error.
 */
import { MetricsParseError } from './parse-error.js';

/** kamcmd printed an RPC error. */
export class KamcmdRpcError extends Error {
  override readonly name = 'KamcmdRpcError';
  constructor(
    readonly command: string,
    readonly code: number,
    readonly rpcMessage: string,
  ) {
    super(`kamcmd ${command}: RPC error ${code}: ${rpcMessage}`);
  }
}

const ERROR_LINE = /^error: (\d+) - (.*)$/i;
const NUMBER = /^-?\d+(\.\d+)?$/;

export function parseKamcmdStruct(text: string, command: string): Record<string, number | string> {
  const lines = text
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l !== '');
  const error = ERROR_LINE.exec(lines[0] ?? '');
  if (error) throw new KamcmdRpcError(command, Number(error[1]), error[2] ?? '');
  const source = `kamcmd ${command}`;
  if (lines[0] !== '{' || lines[lines.length - 1] !== '}') {
    throw new MetricsParseError(
      source,
      `expected a { ... } struct, got ${JSON.stringify(text.slice(0, 80))}`,
    );
  }
  const out: Record<string, number | string> = {};
  for (const line of lines.slice(1, -1)) {
    const at = line.indexOf(': ');
    const name = at > 0 ? line.slice(0, at).trim() : '';
    const value = at > 0 ? line.slice(at + 2).trim() : '';
    if (name === '' || name === '{' || name === '}' || value === '{') {
      throw new MetricsParseError(source, `unexpected line ${JSON.stringify(line)}`);
    }
    out[name] = NUMBER.test(value) ? Number(value) : value;
  }
  return out;
}
