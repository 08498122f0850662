/**
 * What the schema cannot check about files a config names: secrets given inline or in a file, keys
 * in hex, and paths, which are relative to the config file's directory (never to the working
 * directory, which differs between a shell and systemd).
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { ConfigIssue } from './errors.js';

export function resolvePath(baseDir: string, path: string): string {
  return isAbsolute(path) ? path : resolve(baseDir, path);
}

const prefixed = (at: string, key: string) => (at ? `${at}.${key}` : key);

/** Reads a secret that is given inline or in a file (exactly one of the two). */
export function secret<I extends string, F extends string>(
  obj: { readonly [K in I | F]?: string },
  inlineKey: I,
  fileKey: F,
  at: string,
  baseDir: string,
  issues: ConfigIssue[],
  required: boolean,
): string | undefined {
  const inline = obj[inlineKey];
  const file = obj[fileKey];
  if (inline !== undefined && file !== undefined) {
    issues.push({ path: prefixed(at, fileKey), message: `give either ${inlineKey} or ${fileKey}, not both` });
    return undefined;
  }
  if (typeof file === 'string') {
    const path = resolvePath(baseDir, file);
    try {
      const value = readFileSync(path, 'utf8').trim();
      if (!value) issues.push({ path: prefixed(at, fileKey), message: `file ${path} is empty` });
      return value;
    } catch (e) {
      issues.push({
        path: prefixed(at, fileKey),
        message: `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? e}`,
      });
      return undefined;
    }
  }
  if (typeof inline === 'string') return inline;
  if (required)
    issues.push({ path: prefixed(at, inlineKey), message: `required: give ${inlineKey} or ${fileKey}` });
  return undefined;
}

/**
 * A file the daemon reads later (a private key): resolved against the config's directory and
 * checked readable now, so a wrong path is a refused config (exit 3), not a start-up failure that
 * a service manager retries forever. Returns the absolute path.
 */
export function readableFile(path: string, field: string, baseDir: string, issues: ConfigIssue[]): string {
  const absolute = resolvePath(baseDir, path);
  try {
    accessSync(absolute, constants.R_OK);
  } catch (e) {
    issues.push({
      path: field,
      message: `cannot read ${absolute}: ${(e as NodeJS.ErrnoException).code ?? e}`,
    });
  }
  return absolute;
}

export interface HexKeyForm {
  readonly pattern: RegExp;
  readonly expected: string;
}

export const MASTER_KEY: HexKeyForm = {
  pattern: /^([0-9a-fA-F]{2}){32,64}$/,
  expected: '64 to 128 hex digits (a 32 to 64 byte key)',
};
export const DERIVED_KEY: HexKeyForm = {
  pattern: /^[0-9a-fA-F]{64}$/,
  expected: '64 hex digits (a 32 byte derived key, from `sipweigh keys derive`)',
};

/** Keys read from files are checked here; inline ones were already checked by the schema. */
export function hexKey(
  value: string | undefined,
  path: string,
  issues: ConfigIssue[],
  form: HexKeyForm = MASTER_KEY,
): Buffer | undefined {
  if (value === undefined) return undefined;
  if (!form.pattern.test(value)) {
    issues.push({ path, message: `must be ${form.expected}` });
    return undefined;
  }
  return Buffer.from(value, 'hex');
}
