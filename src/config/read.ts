/**
 * Reads a config file and parses it (YAML, or JSON for a .json file), keeping a way back from a
 * field to its line and column for the messages.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import { ConfigError, pointerSegments } from './errors.js';

/** Line and column (1-based) of the node at a JSON pointer, or of its nearest existing parent. */
export type Locate = (pointer: string) => { line: number; column: number } | undefined;

export interface ParsedConfig {
  readonly data: unknown;
  readonly locate: Locate;
}

export const NOWHERE: Locate = () => undefined;

export function parseConfigText(file: string, text: string): ParsedConfig {
  // JSON is a subset of YAML 1.2, but a .json file gets JSON's stricter parser and messages.
  if (extname(file).toLowerCase() === '.json') {
    try {
      return { data: JSON.parse(text) as unknown, locate: NOWHERE };
    } catch (e) {
      throw new ConfigError(file, [{ path: '', message: `malformed JSON: ${(e as Error).message}` }]);
    }
  }
  const lineCounter = new LineCounter();
  const doc: Document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((err) => {
        const pos = lineCounter.linePos(err.pos[0]);
        return {
          path: '',
          message: `malformed YAML: ${err.message.split('\n')[0]}`,
          line: pos.line,
          column: pos.col,
        };
      }),
    );
  }
  const locate: Locate = (pointer) => {
    // Walk up to the nearest node that exists, so a missing field points at its parent.
    const segs = pointerSegments(pointer);
    for (let n = segs.length; n >= 0; n--) {
      const node = doc.getIn(segs.slice(0, n), true);
      if (isNode(node) && node.range) {
        const pos = lineCounter.linePos(node.range[0]);
        return { line: pos.line, column: pos.col };
      }
    }
    return undefined;
  };
  return { data: doc.toJS() as unknown, locate };
}

export function readConfigFile(file: string): ParsedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [
      { path: '', message: `cannot read the file: ${(e as NodeJS.ErrnoException).code ?? e}` },
    ]);
  }
  return parseConfigText(file, text);
}
