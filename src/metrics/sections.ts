/**
 * Several commands in one remote exec, their outputs told apart by marker lines.
 *
 * The SSH collector reads /proc/stat, /proc/meminfo, /proc/loadavg and /proc/net/udp{,6} (and, on the
 * slower cadence, three kamcmd calls) in a single round trip. Each command's stdout and stderr go
 * between a begin and an end marker; the end marker carries its exit status, so one missing file
 * (no IPv6, so no /proc/net/udp6) fails only its own section.
 */

export interface SectionCommand {
  /** [A-Za-z0-9_.-]+, unique within one exec. */
  readonly name: string;
  /** A shell command line; trusted (it comes from our code and the operator's config). */
  readonly command: string;
}

export type SectionResult =
  | { readonly ok: true; readonly output: string }
  | { readonly ok: false; readonly status: number; readonly output: string };

const BEGIN = '@@sipweigh-begin';
const END = '@@sipweigh-end';
const NAME = /^[A-Za-z0-9_.-]+$/;

/**
 * One shell line that runs every command in order. The end marker starts with a newline of its own
 * so that output without a final newline cannot swallow it; the parser removes that newline again.
 */
export function buildSectionedCommand(commands: readonly SectionCommand[]): string {
  return commands
    .map((c) => {
      if (!NAME.test(c.name)) throw new Error(`bad section name: ${c.name}`);
      return `echo '${BEGIN} ${c.name}'; { ${c.command} ; } 2>&1; printf '\\n${END} ${c.name} %s\\n' $?`;
    })
    .join('; ');
}

/** Splits the combined output; a section absent from it (exec cut short) is missing from the map. */
export function parseSections(output: string): Map<string, SectionResult> {
  const results = new Map<string, SectionResult>();
  const lines = output.split('\n');
  let current: { name: string; lines: string[] } | undefined;
  for (const line of lines) {
    if (line.startsWith(`${BEGIN} `)) {
      current = { name: line.slice(BEGIN.length + 1), lines: [] };
      continue;
    }
    if (current && line.startsWith(`${END} ${current.name} `)) {
      const status = Number(line.slice(END.length + current.name.length + 2));
      // Drop the newline printf put before the end marker.
      if (current.lines[current.lines.length - 1] === '') current.lines.pop();
      const text = current.lines.length === 0 ? '' : `${current.lines.join('\n')}\n`;
      results.set(
        current.name,
        status === 0 ? { ok: true, output: text } : { ok: false, status, output: text },
      );
      current = undefined;
      continue;
    }
    current?.lines.push(line);
  }
  return results;
}
