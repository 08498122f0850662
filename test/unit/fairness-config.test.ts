/**
 * Fair admission settings: networks as the operator writes them (src/util/cidr.ts) and what
 * `loadConfig` (and so `sipweigh validate`) refuses, each refusal naming the field.
 */
import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/config/errors.js';
import { loadControllerConfig } from '../../src/config/load.js';
import { formatNetwork, overlaps, parseNetwork, type Network } from '../../src/util/cidr.js';
import { controllerWithFairness } from '../support/fairness-config.js';

const net = (text: string): Network => {
  const p = parseNetwork(text);
  if (!p.ok) throw new Error(p.error);
  return p.network;
};

describe('networks (util/cidr)', () => {
  it('parses IPv4 and IPv6 addresses and blocks into their ranges', () => {
    expect(formatNetwork(net('10.1.0.0/16'))).to.equal('10.1.0.0/16');
    expect(formatNetwork(net('192.0.2.7'))).to.equal('192.0.2.7/32');
    const v6 = net('2001:db8::/32');
    expect(v6.family).to.equal(6);
    expect(v6.last - v6.first).to.equal((1n << 96n) - 1n);
    expect(net('::ffff:10.0.0.1').first).to.equal((0xffffn << 32n) | (10n << 24n) | 1n);
    expect(formatNetwork(net('0.0.0.0/0'))).to.equal('0.0.0.0/0');
  });

  it('refuses what is not a network, naming why', () => {
    const error = (t: string) => {
      const p = parseNetwork(t);
      return p.ok ? null : p.error;
    };
    expect(error('10.0.0.1/24')).to.match(/host bits set \(did you mean 10\.0\.0\.0\/24\?\)/);
    expect(error('10.0.0.0/33')).to.match(/prefix must be 0\.\.32/);
    expect(error('example.com')).to.match(/not an IPv4 or IPv6 address/);
    expect(error('10.0.0.0/8/1')).to.match(/not an address or CIDR block/);
    expect(error('10.0.0.0/x')).to.match(/prefix/);
    expect(error('2001:db8::1/129')).to.match(/0\.\.128/);
  });

  it('overlap: one block inside another, equal blocks; never across families', () => {
    expect(overlaps(net('10.0.0.0/8'), net('10.20.0.0/16'))).to.equal(true);
    expect(overlaps(net('10.0.0.5'), net('10.0.0.5/32'))).to.equal(true);
    expect(overlaps(net('10.0.0.0/24'), net('10.0.1.0/24'))).to.equal(false);
    expect(overlaps(net('::/0'), net('10.0.0.0/8'))).to.equal(false);
  });
});

describe('admission.fairness in the controller config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sipweigh-fair-config-'));
  let n = 0;
  const controller = (fairness: string, addressFile = true) => {
    const f = join(dir, `c${n++}.yaml`);
    writeFileSync(f, controllerWithFairness(fairness, addressFile));
    return f;
  };
  const refused = (f: string): { path: string; message: string }[] => {
    try {
      loadControllerConfig(f);
    } catch (e) {
      expect(e).to.be.instanceOf(ConfigError);
      return (e as ConfigError).issues.map((i) => ({ path: i.path, message: i.message }));
    }
    throw new Error('accepted');
  };

  it('takes groups with their defaults filled in', () => {
    const c = loadControllerConfig(
      controller(`    top_n: 5
    groups:
      - { name: carrier-a, networks: [192.0.2.0/24, "2001:db8::/48"], weight: 2, guaranteed_cps: 20, trusted: true }
      - { name: sbc-b, networks: [198.51.100.7] }
`),
    );
    expect(c.admission.fairness.top_n).to.equal(5);
    expect(c.admission.fairness.groups[1]).to.deep.equal({
      name: 'sbc-b',
      networks: ['198.51.100.7'],
      weight: 1,
      guaranteed_cps: 0,
      trusted: false,
    });
    expect(c.lb_nodes[0]?.address_file).to.equal('/tmp/sources.list');
  });

  it('refuses a bad CIDR and an address in two groups, naming the network', () => {
    const issues = refused(
      controller(`    groups:
      - { name: a, networks: [10.0.0.0/8, 10.0.0.1/24] }
      - { name: b, networks: [192.0.2.0/24, 10.20.0.0/16] }
`),
    );
    expect(issues.map((i) => i.path)).to.deep.equal([
      'admission.fairness.groups[0].networks[1]',
      'admission.fairness.groups[1].networks[1]',
    ]);
    expect(issues[0]?.message).to.match(/host bits set/);
    expect(issues[1]?.message).to.match(/10\.20\.0\.0\/16 overlaps 10\.0\.0\.0\/8 of group a/);
  });

  it('refuses duplicate group names, guarantees beyond the pool, groups without an address file', () => {
    const dup = refused(
      controller(`    groups:
      - { name: a, networks: [10.0.0.0/8] }
      - { name: a, networks: [192.0.2.0/24] }
`),
    );
    expect(dup.map((i) => i.path)).to.deep.equal(['admission.fairness.groups[1].name']);
    // capacity 100 x headroom 0.92 x (1 - 0.05) = 87.4
    const much = refused(
      controller(`    groups:
      - { name: a, networks: [10.0.0.0/8], guaranteed_cps: 50 }
      - { name: b, networks: [192.0.2.0/24], guaranteed_cps: 40 }
`),
    );
    expect(much.map((i) => i.path)).to.deep.equal(['admission.fairness.groups']);
    expect(much[0]?.message).to.match(/sum to 90 calls\/s, more than set 1 .* \(87 =/);
    const noFile = refused(controller(`    groups:\n      - { name: a, networks: [10.0.0.0/8] }\n`, false));
    expect(noFile.map((i) => i.path)).to.deep.equal(['lb_nodes[0].address_file']);
  });

  it('refuses out-of-range settings by their field', () => {
    expect(refused(controller('    top_n: 0\n')).map((i) => i.path)).to.deep.equal([
      'admission.fairness.top_n',
    ]);
    expect(refused(controller('    other_reserve: 0.9\n')).map((i) => i.path)).to.deep.equal([
      'admission.fairness.other_reserve',
    ]);
    expect(
      refused(controller('    groups:\n      - { name: a, networks: [10.0.0.0/8], weight: 0 }\n')).map(
        (i) => i.path,
      ),
    ).to.deep.equal(['admission.fairness.groups[0].weight']);
  });
});
