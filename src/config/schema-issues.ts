/** ajv's errors as operator-facing issues: one line per field, in words, at the field's line. */
import { jsonPointerToPath, type ConfigIssue } from './errors.js';
import type { Locate } from './read.js';
import type { ErrorObject } from './schema-registry.js';

const FORMAT_NAMES: Record<string, string> = {
  ipv4: 'an IPv4 address (e.g. 127.0.0.10)',
  uri: 'a URL (e.g. http://127.0.0.10:5071/RPC)',
};

function describe(err: ErrorObject): { pointer: string; message: string } {
  const p = err.params as Record<string, unknown>;
  switch (err.keyword) {
    case 'additionalProperties':
      return {
        pointer: `${err.instancePath}/${String(p.additionalProperty)}`,
        message: 'unknown field (not in the schema; check the spelling)',
      };
    case 'required':
      return {
        pointer: `${err.instancePath}/${String(p.missingProperty)}`,
        message: 'required field is missing',
      };
    case 'const':
      return { pointer: err.instancePath, message: `must be ${JSON.stringify(p.allowedValue)}` };
    case 'enum':
      return {
        pointer: err.instancePath,
        message: `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`,
      };
    case 'pattern': {
      const d = (err.parentSchema as { description?: string } | undefined)?.description;
      return { pointer: err.instancePath, message: d ? `must be ${d}` : `must match ${String(p.pattern)}` };
    }
    case 'format':
      return {
        pointer: err.instancePath,
        message: `must be ${FORMAT_NAMES[String(p.format)] ?? `a valid ${String(p.format)}`}`,
      };
    default:
      return { pointer: err.instancePath, message: err.message ?? err.keyword };
  }
}

export function schemaIssues(errors: readonly ErrorObject[], locate: Locate): ConfigIssue[] {
  const seen = new Set<string>();
  const issues: ConfigIssue[] = [];
  for (const err of errors) {
    // allErrors reports every failed branch; one line per field and message is enough.
    if (err.keyword === 'if') continue;
    const { pointer, message } = describe(err);
    const key = `${pointer} ${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const pos = locate(pointer);
    issues.push({ path: jsonPointerToPath(pointer), message, ...(pos ?? {}) });
  }
  return issues;
}
