/**
 * The test matrix. Kamailio: the data-plane and closed-loop files run once per installed Kamailio
 * (the Debian package's 5.6 and the 6.1 that scripts/third-party.sh builds), or on SIPWEIGH_KAMAILIO
 * alone when it is set. LB: the closed-loop files also run with the OpenSIPS 3.6 LB (backends stay
 * Kamailio) when OpenSIPS is installed. Each run passes its binary into the lab (no process.env
 * mutation), and the suite titles carry the platform, so a failure says which platform it failed on.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { formatDispatcherList, type Destination } from '../../src/kamailio/dispatcher-list.js';
import { fetchEffectiveWeights } from '../../src/kamailio/fetch-dispatcher-list.js';
import { KamailioRpcClient } from '../../src/kamailio/rpc.js';
import type { AdmissionRpc } from '../../src/kamailio/admission.js';
import type { RunningLab, StartLabOptions } from '../../src/lab/lab.js';
import { opensipsBinary, type LbKind } from '../../src/lab/opensips.js';
import { installedKamailios, type KamailioPlatform } from '../../src/lab/platforms.js';
import { OpenSipsAdmissionRpc } from '../../src/opensips/admission.js';
import { formatDispatcherTable } from '../../src/opensips/dispatcher-table.js';
import { dsListWeights, stateLetter } from '../../src/opensips/ds-list.js';
import { OpenSipsMiClient } from '../../src/opensips/mi.js';

let matrix: KamailioPlatform[] | undefined;
let opensipsLabel: string | null | undefined;

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
    printPlatforms(matrix, installedOpenSips());
  }
  return matrix;
}

/** `version: opensips 3.6.8 (x86_64/linux)` (the first line of `opensips -V`) -> `opensips 3.6.8`. */
export function parseOpenSipsLabel(output: string): string | null {
  const m = /version:\s*opensips\s+(\d+\.\d+\.\d+)/i.exec(output);
  return m ? `opensips ${m[1]}` : null;
}

/** The OpenSIPS the lab runs (SIPWEIGH_OPENSIPS, else /opt/sipweigh/opensips-3.6.8), or null. */
function installedOpenSips(): string | null {
  if (opensipsLabel === undefined) {
    const r = spawnSync(opensipsBinary(), ['-V'], { encoding: 'utf8', timeout: 10000 });
    opensipsLabel =
      r.error || r.status !== 0 ? null : parseOpenSipsLabel(`${r.stdout ?? ''}${r.stderr ?? ''}`);
  }
  return opensipsLabel;
}

/** One line per platform at the start of the run (mocha loads every file before it runs one). */
function printPlatforms(kamailios: readonly KamailioPlatform[], opensips: string | null): void {
  const lines = kamailios.map((k) => `platform: ${k.label} (${k.binary})`);
  if (opensips) lines.push(`platform: ${opensips} (${opensipsBinary()})`);
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

/** What a test may need of the LB that only one kind has (docs/opensips.md, "Not done for OpenSIPS nodes"). */
export type LbFeature = 'lease-backstop' | 'evidence-counters' | 'fair-share' | 'packet-guard';

const OPENSIPS_LACKS: ReadonlySet<LbFeature> = new Set([
  'lease-backstop',
  'evidence-counters',
  'fair-share',
  'packet-guard',
]);

/** The features of `needs` an LB of this kind does not have (pure). */
export function missingFeatures(kind: LbKind, needs: readonly LbFeature[]): LbFeature[] {
  return kind === 'opensips' ? needs.filter((f) => OPENSIPS_LACKS.has(f)) : [];
}

/** One row of the LB matrix: which SIP server is the LB, and which Kamailio runs the backends. */
export interface LbPlatform {
  readonly lb: LbKind;
  /** `kamailio 6.1.4`, `opensips 3.6.8 (backends kamailio 5.6.3)`: the suite title's suffix. */
  readonly label: string;
  /** The backends' Kamailio, and the LB's when `lb` is kamailio. */
  readonly kamailio: KamailioPlatform;
}

/**
 * The closed-loop matrix (pure): every Kamailio as LB and backends, then the OpenSIPS LB (when
 * installed) in front of the first (oldest) Kamailio's backends.
 */
export function lbMatrix(kamailios: readonly KamailioPlatform[], opensips: string | null): LbPlatform[] {
  const rows: LbPlatform[] = kamailios.map((k) => ({ lb: 'kamailio', label: k.label, kamailio: k }));
  const backends = kamailios[0];
  if (opensips && backends) {
    rows.push({ lb: 'opensips', label: `${opensips} (backends ${backends.label})`, kamailio: backends });
  }
  return rows;
}

/** `describe(title, fn)` once per LB platform, titled `title [<label>]`. */
export function describeEachLb(title: string, fn: (this: Mocha.Suite, platform: LbPlatform) => void): void {
  for (const platform of lbMatrix(kamailioMatrix(), installedOpenSips())) {
    describe(`${title} [${platform.label}]`, function () {
      fn.call(this, platform);
    });
  }
}

/**
 * `it(title, fn)`, or `it.skip` with the reason in its title when the platform's LB lacks a feature
 * the case needs: a skipped case is named in the run's output, never silently absent.
 */
export function itOnLb(
  platform: LbPlatform,
  needs: readonly LbFeature[],
  title: string,
  fn: Mocha.AsyncFunc,
): void {
  const missing = missingFeatures(platform.lb, needs);
  if (missing.length === 0) it(title, fn);
  else it.skip(`${title} (not on ${platform.lb}: no ${missing.join(', ')})`, fn);
}

/** The lab options that put this platform's binaries in place. */
export function labPlatformOptions(platform: LbPlatform): Pick<StartLabOptions, 'lb' | 'kamailio'> {
  return { lb: platform.lb, kamailio: platform.kamailio.binary };
}

/** The lab's LB as the tests read and disturb it, whichever SIP server it is. */
export interface LbUnderTest {
  readonly kind: LbKind;
  /** Backend id -> effective weight (0 = out of rotation), as the LB holds it; null if it did not answer. */
  readWeights(): Promise<Map<string, number> | null>;
  /** Where the controller's admission limiters live (readLimiters/setLimiter take it). */
  readonly admission: AdmissionRpc;
  /**
   * What an operator would do by hand: write this list into the LB's own file and make the LB load
   * it (Kamailio: dispatcher.list + `dispatcher.reload`; OpenSIPS: the db_text table + `dbt_reload`,
   * `ds_reload`, then `ds_set_state` for each destination not active, since OpenSIPS does not read
   * states from the table).
   */
  operatorReload(destinations: readonly Destination[]): Promise<void>;
  /** The same list written to the LB's file only, e.g. while the LB is down. */
  writeList(destinations: readonly Destination[]): void;
  close(): void;
}

export function lbUnderTest(lab: RunningLab): LbUnderTest {
  const { state } = lab;
  if (state.lb_kind === 'opensips') {
    const mi = new OpenSipsMiClient({ url: state.lb_rpc_url });
    const writeList = (d: readonly Destination[]) =>
      writeFileSync(state.dispatcher_list, formatDispatcherTable(d));
    return {
      kind: 'opensips',
      readWeights: async () => {
        try {
          return dsListWeights(await mi.call('ds_list', { full: 1 }, 2000));
        } catch {
          return null;
        }
      },
      admission: new OpenSipsAdmissionRpc(mi),
      writeList,
      operatorReload: async (d) => {
        writeList(d);
        await mi.call('dbt_reload');
        await mi.call('ds_reload');
        for (const x of d.filter((x) => x.state !== 'active')) {
          await mi.call('ds_set_state', {
            state: stateLetter(x.state),
            group: String(x.setId),
            address: x.uri,
          });
        }
      },
      close: () => mi.close(),
    };
  }
  const { rpc } = state.plan.lb;
  const client = new KamailioRpcClient({
    url: state.lb_rpc_url,
    username: rpc.username,
    password: rpc.password,
  });
  const writeList = (d: readonly Destination[]) =>
    writeFileSync(state.dispatcher_list, formatDispatcherList(d));
  return {
    kind: 'kamailio',
    readWeights: () => fetchEffectiveWeights(client, { deadlineMs: 2000 }),
    admission: client,
    writeList,
    operatorReload: async (d) => {
      writeList(d);
      await client.call('dispatcher.reload');
    },
    close: () => client.close(),
  };
}
