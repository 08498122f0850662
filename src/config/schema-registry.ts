/**
 * One Ajv (draft 2020-12) instance holding every schema in schemas/, compiled once.
 * Other modules (heartbeat codec, API bodies) get their validators from here too.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { SCHEMA_DIR } from '../util/package-root.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

export const SCHEMA_BASE = 'https://sipweigh.dev/schemas/';

let ajv: Ajv2020 | undefined;
let defaultsAjv: Ajv2020 | undefined;

function loaded(strict: boolean): Ajv2020 {
  // useDefaults: the schema is the one place defaults are written down.
  const instance = new Ajv2020({
    allErrors: true,
    useDefaults: true,
    strict,
    allowUnionTypes: true,
    verbose: true,
  });
  addFormats(instance);
  for (const file of readdirSync(SCHEMA_DIR)
    .filter((f) => f.endsWith('.schema.json'))
    .sort()) {
    instance.addSchema(JSON.parse(readFileSync(join(SCHEMA_DIR, file), 'utf8')) as object);
  }
  return instance;
}

function registry(): Ajv2020 {
  ajv ??= loaded(true);
  return ajv;
}

/** The compiled validator of `schemas/<name>.schema.json`. */
export function validatorFor<T = unknown>(name: string): ValidateFunction<T> {
  const v = registry().getSchema<T>(`${SCHEMA_BASE}${name}.schema.json`);
  if (!v) throw new Error(`no schema named ${name} in ${SCHEMA_DIR}`);
  return v;
}

/**
 * What the schema fills in for a part of a config file left empty: ajv's useDefaults applied to `{}`
 * at `pointer` (e.g. `/properties/scoring`). Code that needs a default reads it here, so the
 * schema stays the one place a default is written down. Required fields are absent from the result.
 */
export function schemaDefaults<T>(name: string, pointer: string): T {
  // Not strict: strict mode refuses to compile a part whose own `default` it would ignore (we
  // start from `{}` anyway). The schemas themselves are checked strictly by registry().
  defaultsAjv ??= loaded(false);
  const v = defaultsAjv.getSchema(`${SCHEMA_BASE}${name}.schema.json#${pointer}`);
  if (!v) throw new Error(`no ${pointer} in schema ${name}`);
  const filled: Record<string, unknown> = {};
  // The filled object is the answer whatever the verdict: `{}` lacks the required fields.
  v(filled);
  // T is the section's type, held to the schema by test/unit/config-schema-shapes.test.ts.
  return filled as T;
}

export type { ErrorObject };
