/**
 * The closed-loop LB matrix (test/support/platforms.ts) and how an OpenSIPS LB's ds_list reads as
 * weights (src/opensips/ds-list.ts, dsListWeights): pure functions, no processes.
 */
import { expect } from 'chai';
import type { KamailioPlatform } from '../../src/lab/platforms.js';
import { dsListWeights } from '../../src/opensips/ds-list.js';
import { lbMatrix, missingFeatures, parseOpenSipsLabel } from '../support/platforms.js';

const k56: KamailioPlatform = {
  binary: '/usr/sbin/kamailio',
  version: { major: 5, minor: 6, patch: 3 },
  label: 'kamailio 5.6.3',
};
const k61: KamailioPlatform = {
  binary: '/opt/sipweigh/kamailio-6.1.4/sbin/kamailio',
  version: { major: 6, minor: 1, patch: 4 },
  label: 'kamailio 6.1.4',
};

describe('closed-loop LB matrix', function () {
  it('reads the OpenSIPS version from `opensips -V`', function () {
    expect(parseOpenSipsLabel('version: opensips 3.6.8 (x86_64/linux)\nflags: ...')).to.equal(
      'opensips 3.6.8',
    );
    expect(parseOpenSipsLabel('version: kamailio 6.1.4 (x86_64/linux)')).to.equal(null);
    expect(parseOpenSipsLabel('')).to.equal(null);
  });

  it('runs every Kamailio as the LB, then OpenSIPS in front of the oldest Kamailio’s backends', function () {
    const rows = lbMatrix([k56, k61], 'opensips 3.6.8');
    expect(rows.map((r) => r.label)).to.deep.equal([
      'kamailio 5.6.3',
      'kamailio 6.1.4',
      'opensips 3.6.8 (backends kamailio 5.6.3)',
    ]);
    expect(rows.map((r) => r.lb)).to.deep.equal(['kamailio', 'kamailio', 'opensips']);
    expect(rows[2]!.kamailio).to.equal(k56);
  });

  it('has no OpenSIPS row without OpenSIPS (or without a Kamailio for its backends)', function () {
    expect(lbMatrix([k61], null).map((r) => r.label)).to.deep.equal(['kamailio 6.1.4']);
    expect(lbMatrix([], 'opensips 3.6.8')).to.deep.equal([]);
  });

  it('skips on OpenSIPS only what docs/opensips.md lists as not done there', function () {
    expect(missingFeatures('kamailio', ['lease-backstop', 'fair-share'])).to.deep.equal([]);
    expect(missingFeatures('opensips', [])).to.deep.equal([]);
    expect(
      missingFeatures('opensips', ['lease-backstop', 'evidence-counters', 'fair-share', 'packet-guard']),
    ).to.deep.equal(['lease-backstop', 'evidence-counters', 'fair-share', 'packet-guard']);
  });
});

describe('OpenSIPS ds_list as effective weights', function () {
  const dest = (uri: string, state: string, weight: number | string, extra: object = {}) => ({
    URI: uri,
    state,
    first_hit_counter: 0,
    weight,
    priority: 0,
    ...extra,
  });
  const reply = (dests: object[]) => ({
    PARTITIONS: [{ name: 'default', SETS: [{ id: 1, Destinations: dests }] }],
  });

  it('an Active destination weighs its table weight; Inactive and Probing are out of rotation (0)', function () {
    const w = dsListWeights(
      reply([
        dest('sip:127.0.0.11:5060', 'Active', 25, { attr: 'duid=be1;rweight=25', description: 'be1' }),
        // A dead backend as OpenSIPS itself marks it (failed pings, ds_mark_dst): Probing, weight kept.
        dest('sip:127.0.0.12:5060', 'Probing', 50, { attr: 'duid=be2;rweight=50', description: 'be2' }),
        dest('sip:127.0.0.13:5060', 'Inactive', 100, { attr: 'duid=be3;rweight=100', description: 'be3' }),
      ]),
    );
    expect(w).to.deep.equal(
      new Map([
        ['be1', 25],
        ['be2', 0],
        ['be3', 0],
      ]),
    );
  });

  it('names a destination by its duid, else its description, else its URI; a weight as a string counts', function () {
    const w = dsListWeights(
      reply([
        dest('sip:127.0.0.11:5060', 'Active', '7', { description: 'be1' }),
        dest('sip:127.0.0.12:5060', 'Active', 9),
      ]),
    );
    expect(w).to.deep.equal(
      new Map([
        ['be1', 7],
        ['sip:127.0.0.12:5060', 9],
      ]),
    );
  });

  it('an empty dispatcher is an empty map; an unreadable reply is null', function () {
    expect(dsListWeights({})).to.deep.equal(new Map());
    expect(dsListWeights(null)).to.equal(null);
    expect(dsListWeights(reply([dest('sip:127.0.0.11:5060', 'Gone', 1)]))).to.equal(null);
    expect(
      dsListWeights({ PARTITIONS: [{ name: 'other', SETS: [{ id: 1, Destinations: [] }] }] }),
    ).to.deep.equal(new Map());
  });
});
