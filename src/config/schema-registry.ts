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

function registry(): Ajv2020 {
  if (ajv) return ajv;
  // useDefaults: the schema is the one place defaults are written down.
  const instance = new Ajv2020({
    allErrors: true,
    useDefaults: true,
    strict: true,
    allowUnionTypes: true,
    verbose: true,
  });
  addFormats(instance);
  for (const file of readdirSync(SCHEMA_DIR)
    .filter((f) => f.endsWith('.schema.json'))
    .sort()) {
    instance.addSchema(JSON.parse(readFileSync(join(SCHEMA_DIR, file), 'utf8')) as object);
  }
  ajv = instance;
  return instance;
}

/** The compiled validator of `schemas/<name>.schema.json`. */
export function validatorFor<T = unknown>(name: string): ValidateFunction<T> {
  const v = registry().getSchema<T>(`${SCHEMA_BASE}${name}.schema.json`);
  if (!v) throw new Error(`no schema named ${name} in ${SCHEMA_DIR}`);
  return v;
}

export type { ErrorObject };
