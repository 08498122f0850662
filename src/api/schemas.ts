/** The API's JSON Schemas (schemas/api/), compiled once: request bodies are checked with them, and tests check responses. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { SCHEMA_DIR } from '../util/package-root.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

export const API_SCHEMA_DIR = join(SCHEMA_DIR, 'api');
export const API_SCHEMA_BASE = 'https://sipweigh.dev/schemas/api/';

export type ApiSchemaName =
  | 'error'
  | 'health'
  | 'ready'
  | 'status'
  | 'backend'
  | 'backends'
  | 'lb-nodes'
  | 'sources'
  | 'drain-request'
  | 'reload-response'
  | 'event';

let ajv: Ajv2020 | undefined;

function registry(): Ajv2020 {
  if (ajv) return ajv;
  const instance = new Ajv2020({ allErrors: false, strict: true, allowUnionTypes: true });
  addFormats(instance);
  for (const f of readdirSync(API_SCHEMA_DIR).filter((n) => n.endsWith('.schema.json'))) {
    instance.addSchema(JSON.parse(readFileSync(join(API_SCHEMA_DIR, f), 'utf8')) as object);
  }
  ajv = instance;
  return instance;
}

export function apiValidator(name: ApiSchemaName): ValidateFunction {
  const v = registry().getSchema(`${API_SCHEMA_BASE}${name}.schema.json`);
  if (!v) throw new Error(`no API schema ${name} in ${API_SCHEMA_DIR}`);
  return v;
}

/** One line naming the field that is wrong, for a 400 answer. */
export function describeBodyError(err: ErrorObject | undefined): string {
  if (!err) return 'invalid body';
  const field = err.instancePath ? err.instancePath.slice(1).replace(/\//g, '.') : 'body';
  const p = err.params as Record<string, unknown>;
  if (err.keyword === 'additionalProperties') return `${String(p.additionalProperty)}: unknown field`;
  if (err.keyword === 'required') return `${String(p.missingProperty)}: required field is missing`;
  return `${field}: ${err.message ?? err.keyword}`;
}
