/**
 * The installed package's root (where schemas/, kamailio/ and src/lab/kamailio/ live), found from this file's location,
 * so the same code works from src/ under tsx and from dist/src/ after the build.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'schemas'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('sipweigh: cannot find the package root (package.json + schemas/)');
    dir = parent;
  }
}

export const PACKAGE_ROOT = findRoot();
export const SCHEMA_DIR = join(PACKAGE_ROOT, 'schemas');
/** The lab's own Kamailio configs (its LB and its capacity-emulating backends), not the product's. */
export const LAB_KAMAILIO_CFG_DIR = join(PACKAGE_ROOT, 'src', 'lab', 'kamailio');
