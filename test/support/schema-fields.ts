/**
 * Walks a config schema's fields (following $ref into common.schema.json, into array items and
 * nested objects), so tests can hold the schema against the types and the code.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SCHEMA_DIR } from '../../src/util/package-root.js';

type Json = { readonly [key: string]: unknown };

const docs = new Map<string, Json>();
function doc(file: string): Json {
  let d = docs.get(file);
  if (!d) {
    d = JSON.parse(readFileSync(join(SCHEMA_DIR, file), 'utf8')) as Json;
    docs.set(file, d);
  }
  return d;
}

function at(root: Json, pointer: string): Json {
  let node: unknown = root;
  for (const seg of pointer.split('/').filter(Boolean)) node = (node as Json)[seg];
  if (node === undefined) throw new Error(`no ${pointer}`);
  return node as Json;
}

/** One schema node with its $ref followed; `file` is the document it lives in (for the next $ref). */
export interface SchemaNode {
  readonly file: string;
  readonly node: Json;
}

/** Merges a node with what its $ref points at (the node's own keywords win, properties are merged). */
export function resolved(n: SchemaNode): SchemaNode {
  const ref = n.node.$ref;
  if (typeof ref !== 'string') return n;
  const [target = '', pointer = ''] = ref.split('#');
  const file = target || n.file;
  const base = resolved({ file, node: at(doc(file), pointer) });
  const props = { ...(base.node.properties as Json | undefined), ...(n.node.properties as Json | undefined) };
  const { $ref: _r, ...own } = n.node;
  return {
    file,
    node: { ...base.node, ...own, ...(Object.keys(props).length ? { properties: props } : {}) },
  };
}

export function schemaNode(file: string, pointer = ''): SchemaNode {
  return resolved({ file, node: at(doc(file), pointer) });
}

export interface FieldInfo {
  readonly name: string;
  /** Present after loading: required by the schema, or filled in from its default. */
  readonly presence: 'required' | 'optional';
  readonly node: SchemaNode;
}

/** The fields of an object node; a field's own overrides (e.g. per-signal defaults) are merged in. */
export function fieldsOf(n: SchemaNode): FieldInfo[] {
  const props = (n.node.properties ?? {}) as Json;
  const required = new Set((n.node.required ?? []) as string[]);
  return Object.entries(props).map(([name, raw]) => {
    const own = raw as Json;
    const merged = resolved({ file: n.file, node: own });
    const presence = required.has(name) || 'default' in own ? 'required' : 'optional';
    return { name, presence, node: merged };
  });
}

/** The object a field holds, directly or as the items of an array; undefined for a scalar. */
export function objectInside(n: SchemaNode): SchemaNode | undefined {
  if (n.node.properties) return n;
  if (n.node.items) return objectInside(resolved({ file: n.file, node: n.node.items as Json }));
  return undefined;
}

export interface FieldPath {
  /** e.g. `sets[].backends[].ssh.host` */
  readonly path: string;
  readonly name: string;
}

/** Every field of a config schema, nested, as operator-facing paths. */
export function allFields(file: string): FieldPath[] {
  const out: FieldPath[] = [];
  const walk = (n: SchemaNode, prefix: string) => {
    for (const f of fieldsOf(n)) {
      const isArray = f.node.node.items !== undefined;
      const path = `${prefix}${f.name}${isArray ? '[]' : ''}`;
      out.push({ path, name: f.name });
      const inner = objectInside(f.node);
      if (inner) walk(inner, `${path}.`);
    }
  };
  walk(schemaNode(file), '');
  return out;
}
