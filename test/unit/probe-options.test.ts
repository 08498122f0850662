import { expect } from 'chai';
import { fileURLToPath } from 'node:url';
import { loadControllerConfig } from '../../src/config/load.js';
import { endpointOptionsFromConfig } from '../../src/probe/options.js';
import { ProbeCore } from '../../src/probe/probe-core.js';

describe('heartbeat options from the controller config', function () {
  const cfg = loadControllerConfig(fileURLToPath(new URL('../../examples/controller.yaml', import.meta.url)));

  it('takes the schema defaults for everything the example leaves out', function () {
    const o = endpointOptionsFromConfig(cfg);
    expect(o.timing).to.deep.equal({
      probeIntervalMs: 200,
      probeTimeoutMs: 150,
      jitter: 0.1,
      maxProbesPerSecond: 10000,
    });
    expect(o.health).to.deep.equal({
      downAfterMisses: 3,
      returnAfterOks: 5,
      flapHalfLifeMs: 60000,
      flapBaseHoldMs: 2000,
      flapMaxHoldMs: 60000,
    });
    expect(o.freshness).to.deep.equal({ maxAgeMs: 5000, maxFutureMs: 1000 });
    expect(o.masterKeys).to.have.length(1);
    expect([...o.selfRegistrationSets!]).to.deep.equal(
      cfg.sets.filter((s) => s.self_registration).map((s) => s.id),
    );
  });

  it('builds a working core', function () {
    const core = new ProbeCore(endpointOptionsFromConfig(cfg), () => undefined);
    expect(core.size).to.equal(0);
  });
});
