import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import {
  effectiveWeight,
  parseDispatcherList,
  type DispatcherTarget,
} from '../../src/kamailio/dispatcher-list-reply.js';
import { parseDsList } from '../../src/opensips/ds-list.js';

const target = (inRotation: boolean, rweight: number | null): DispatcherTarget => ({
  setId: 1,
  uri: 'sip:127.0.0.11:5060',
  state: inRotation ? 'active' : 'inactive',
  inRotation,
  probing: 'none',
  priority: 0,
  attrsBody: '',
  attrs: {},
  duid: 'be1',
  weight: null,
  rweight,
  latency: null,
});

describe('effective weight of a dispatcher destination', function () {
  it('is its rweight while in rotation, 1 without one, and 0 out of rotation', function () {
    expect(effectiveWeight(target(true, 40))).to.equal(40);
    expect(effectiveWeight(target(true, null))).to.equal(1);
    expect(effectiveWeight(target(false, 40))).to.equal(0);
  });

  it('on Kamailio counts a trying ("T") destination: ds_skip_dst skips only inactive and disabled', function () {
    // The reply of a real 5.6.3 (push-fixtures/dispatcher-flags.list): AX, DX, TX, AP, IX, AX.
    const r = parseDispatcherList(
      JSON.parse(
        readFileSync(new URL('./push-fixtures/dispatcher-list-5.6.3-flags.json', import.meta.url), 'utf8'),
      ),
    );
    if (!r.ok) throw new Error(r.error);
    expect(r.targets.map((t) => [t.duid, t.state, effectiveWeight(t)])).to.deep.equal([
      ['e', 'active', 100],
      ['c', 'disabled', 0],
      ['f', 'trying', 10],
      ['d', 'active', 20],
      ['b', 'inactive', 0],
      ['a', 'active', 50],
    ]);
  });

  it('on OpenSIPS counts 0 for Probing, listed as trying too: dst_is_active excludes it', function () {
    const r = parseDsList({
      PARTITIONS: [
        {
          name: 'default',
          SETS: [
            {
              id: 1,
              Destinations: [
                { URI: 'sip:127.0.0.11:5060', state: 'Active', weight: 70, attr: 'duid=be1;rweight=70' },
                { URI: 'sip:127.0.0.12:5060', state: 'Probing', weight: 30, attr: 'duid=be2;rweight=30' },
                {
                  URI: 'sip:127.0.0.13:5060',
                  state: 'Inactive',
                  weight: 20,
                  attr: 'duid=be3;rweight=20;sw_drained=1',
                },
              ],
            },
          ],
        },
      ],
    });
    if (!r.ok) throw new Error(r.error);
    expect(r.targets.map((t) => [t.duid, t.state, effectiveWeight(t)])).to.deep.equal([
      ['be1', 'active', 70],
      ['be2', 'trying', 0],
      ['be3', 'disabled', 0],
    ]);
  });
});
