/** Why a config file was refused, precise enough for an operator to fix it without reading code. */
export interface ConfigIssue {
  /** Field path as an operator reads it, e.g. `sets[0].backends[1].capacity`; empty for the root. */
  readonly path: string;
  readonly message: string;
  /** 1-based line and column in the file, when known. */
  readonly line?: number;
  readonly column?: number;
}

export class ConfigError extends Error {
  readonly file: string;
  readonly issues: readonly ConfigIssue[];

  constructor(file: string, issues: readonly ConfigIssue[]) {
    super(formatIssues(file, issues));
    this.name = 'ConfigError';
    this.file = file;
    this.issues = issues;
  }
}

export function formatIssues(file: string, issues: readonly ConfigIssue[]): string {
  return issues
    .map((i) => {
      const where = i.line !== undefined ? `${file}:${i.line}:${i.column ?? 1}` : file;
      return `${where}: ${i.path || '(top level)'}: ${i.message}`;
    })
    .join('\n');
}

/** `/sets/0/backends/1` → `sets[0].backends[1]` */
export function jsonPointerToPath(pointer: string): string {
  if (pointer === '') return '';
  return pointer
    .split('/')
    .slice(1)
    .map((raw) => raw.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, seg) => (/^\d+$/.test(seg) ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), '');
}

export function pointerSegments(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .split('/')
    .slice(1)
    .map((raw) => raw.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((seg) => (/^\d+$/.test(seg) ? Number(seg) : seg));
}

/** `sets[0].backends[1]` → `/sets/0/backends/1` (the inverse of jsonPointerToPath). */
export function pathToJsonPointer(path: string): string {
  if (path === '') return '';
  return `/${path
    .replace(/\[(\d+)\]/g, '.$1')
    .split('.')
    .map((seg) => seg.replace(/~/g, '~0').replace(/\//g, '~1'))
    .join('/')}`;
}
