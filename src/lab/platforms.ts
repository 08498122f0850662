/**
 * Which SIP platforms are installed here and their versions: the Debian package's Kamailio
 * (/usr/sbin/kamailio) and the ones scripts/third-party.sh builds under /opt/sipweigh. The tests run
 * their data-plane and closed-loop files once per installed Kamailio; SIPWEIGH_KAMAILIO, when set,
 * chooses one binary for everything (tests, lab, demo, benches).
 *
 * The parsing and the feature table are pure; only `probeKamailio` runs a binary.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface KamailioVersion {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
}

export interface KamailioPlatform {
  readonly binary: string;
  readonly version: KamailioVersion;
  /** `kamailio 6.1.4` */
  readonly label: string;
}

/**
 * Where scripts/third-party.sh installs what Debian does not package (docs/platforms.md); the same
 * SIPWEIGH_OPT override as the script's, so a relocated build is found.
 */
export const THIRD_PARTY_PREFIX = process.env.SIPWEIGH_OPT ?? '/opt/sipweigh';
export const KAMAILIO_61_BINARY = `${THIRD_PARTY_PREFIX}/kamailio-6.1.4/sbin/kamailio`;
export const OPENSIPS_36_BINARY = `${THIRD_PARTY_PREFIX}/opensips-3.6.8/sbin/opensips`;

/** The Kamailios a test run looks for, oldest first: the distribution's, then the built ones. */
export const KAMAILIO_CANDIDATES: readonly string[] = ['/usr/sbin/kamailio', KAMAILIO_61_BINARY];

/** `version: kamailio 6.1.4 (x86_64/linux) ...` (the first line of `kamailio -v`) -> 6.1.4. */
export function parseKamailioVersion(output: string): KamailioVersion | null {
  const m = /version:\s*kamailio\s+(\d+)\.(\d+)\.(\d+)/i.exec(output);
  if (!m) return null;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) };
}

export function formatVersion(v: KamailioVersion): string {
  return `${v.major}.${v.minor}.${v.patch}`;
}

export function atLeast(v: KamailioVersion, major: number, minor: number, patch = 0): boolean {
  if (v.major !== major) return v.major > major;
  if (v.minor !== minor) return v.minor > minor;
  return v.patch >= patch;
}

/**
 * What a Kamailio version offers beyond 5.6 that sipweigh may use, so a caller asks for a feature,
 * not for a number. Gated on 6.1: each is absent from 5.6.3's dispatcher and present in 6.1.4's
 * (read in both module READMEs); the release in between that brought it was not checked.
 */
export interface KamailioFeatures {
  /**
   * dispatcher `ds_retain_latency_stats`: a list reload keeps each destination's OPTIONS latency
   * statistics (5.6 resets them on every reload, so Kamailio's own `cc=1` baseline forgets its
   * congestion estimate each time a list is pushed).
   */
  readonly retainLatencyStats: boolean;
  /**
   * dispatcher algorithm 64: round robin that skips a destination by an overload-control rate
   * (`ds_oc_set_attrs`, RPC `dispatcher.oclist`).
   */
  readonly overloadControlAlg: boolean;
}

export function kamailioFeatures(v: KamailioVersion): KamailioFeatures {
  return {
    retainLatencyStats: atLeast(v, 6, 1),
    overloadControlAlg: atLeast(v, 6, 1),
  };
}

/** Dispatcher algorithms a quality bench may offer as baselines on this version. */
export function dispatcherAlgorithms(v: KamailioVersion): readonly number[] {
  const base = [0, 4, 9, 10, 11, 13];
  return kamailioFeatures(v).overloadControlAlg ? [...base, 64] : base;
}

/** Runs `BINARY -v`; null when it is missing or does not say a Kamailio version. */
export function probeKamailio(binary: string): KamailioPlatform | null {
  const r = spawnSync(binary, ['-v'], { encoding: 'utf8', timeout: 10000 });
  if (r.error || r.status !== 0) return null;
  const version = parseKamailioVersion(`${r.stdout ?? ''}${r.stderr ?? ''}`);
  return version ? { binary, version, label: `kamailio ${formatVersion(version)}` } : null;
}

/**
 * The binaries to run the Kamailio test matrix on (pure: the caller says which paths exist and what
 * they print). SIPWEIGH_KAMAILIO set: that one alone. Otherwise every candidate that exists, with the
 * PATH's `kamailio` standing in for the distribution's when /usr/sbin has none.
 */
export function kamailioMatrixBinaries(
  envBinary: string | undefined,
  exists: (path: string) => boolean,
  candidates: readonly string[] = KAMAILIO_CANDIDATES,
): string[] {
  if (envBinary !== undefined && envBinary !== '') return [envBinary];
  const found = candidates.filter(exists);
  if (!found.includes(candidates[0] ?? '')) found.unshift('kamailio');
  return found;
}

/** The installed Kamailios (see kamailioMatrixBinaries), each with its version; same version once. */
export function installedKamailios(env: NodeJS.ProcessEnv = process.env): KamailioPlatform[] {
  const out: KamailioPlatform[] = [];
  for (const binary of kamailioMatrixBinaries(env.SIPWEIGH_KAMAILIO, existsSync)) {
    const p = probeKamailio(binary);
    if (p && !out.some((o) => o.label === p.label)) out.push(p);
  }
  return out;
}
