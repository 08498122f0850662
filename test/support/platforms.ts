/**
 * The Kamailio test matrix: the data-plane and closed-loop files run once per installed Kamailio
 * (the Debian package's 5.6 and the 6.1 that scripts/third-party.sh builds), or on SIPWEIGH_KAMAILIO
 * alone when it is set. Each run passes its binary into the lab (no process.env mutation), and the
 * suite titles carry the version, so a failure says which platform it failed on.
 */
import { existsSync } from 'node:fs';
import { installedKamailios, OPENSIPS_36_BINARY, type KamailioPlatform } from '../../src/lab/platforms.js';
import { spawnSync } from 'node:child_process';

let matrix: KamailioPlatform[] | undefined;

/** The installed Kamailios, probed once per test process; at least one or it throws. */
export function kamailioMatrix(): readonly KamailioPlatform[] {
  if (!matrix) {
    matrix = installedKamailios();
    if (matrix.length === 0) {
      const env = process.env.SIPWEIGH_KAMAILIO;
      throw new Error(
        env ? `SIPWEIGH_KAMAILIO=${env} does not run or print a Kamailio version` : 'no Kamailio installed',
      );
    }
    printPlatforms(matrix);
  }
  return matrix;
}

/** One line per platform at the start of the run (mocha loads every file before it runs one). */
function printPlatforms(kamailios: readonly KamailioPlatform[]): void {
  const lines = kamailios.map((k) => `platform: ${k.label} (${k.binary})`);
  // The OpenSIPS LB's tests have their own files; said here so one place lists every platform.
  if (existsSync(OPENSIPS_36_BINARY)) {
    const r = spawnSync(OPENSIPS_36_BINARY, ['-V'], { encoding: 'utf8', timeout: 10000 });
    const v = /version:\s*(opensips\s+\S+)/i.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`)?.[1];
    if (v) lines.push(`platform: ${v} (${OPENSIPS_36_BINARY})`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

/**
 * `describe(title, fn)` once per installed Kamailio, titled `title [kamailio X.Y.Z]`; `fn` gets the
 * platform and starts its lab with `kamailio: platform.binary`.
 */
export function describeEachKamailio(
  title: string,
  fn: (this: Mocha.Suite, platform: KamailioPlatform) => void,
): void {
  for (const platform of kamailioMatrix()) {
    describe(`${title} [${platform.label}]`, function () {
      fn.call(this, platform);
    });
  }
}
