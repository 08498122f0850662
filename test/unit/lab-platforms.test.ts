import { expect } from 'chai';
import {
  atLeast,
  dispatcherAlgorithms,
  KAMAILIO_61_BINARY,
  kamailioFeatures,
  kamailioMatrixBinaries,
  parseKamailioVersion,
} from '../../src/lab/platforms.js';

describe('lab: platforms (which Kamailio, which version)', () => {
  it('reads the version from the first line of kamailio -v', () => {
    // As printed by the Debian 12 package and by the 6.1.4 build.
    expect(parseKamailioVersion('version: kamailio 5.6.3 (x86_64/linux) \nflags: USE_TCP')).to.deep.equal({
      major: 5,
      minor: 6,
      patch: 3,
    });
    expect(parseKamailioVersion('version: kamailio 6.1.4 (x86_64/linux) 1b2c3d')).to.deep.equal({
      major: 6,
      minor: 1,
      patch: 4,
    });
    expect(parseKamailioVersion('version: opensips 3.6.8 (x86_64/linux)')).to.equal(null);
    expect(parseKamailioVersion('')).to.equal(null);
  });

  it('compares versions component by component', () => {
    const v = { major: 6, minor: 1, patch: 4 };
    expect(atLeast(v, 6, 1)).to.equal(true);
    expect(atLeast(v, 6, 1, 5)).to.equal(false);
    expect(atLeast(v, 5, 9, 9)).to.equal(true);
    expect(atLeast({ major: 5, minor: 6, patch: 3 }, 6, 0)).to.equal(false);
  });

  it('offers the 6.1 dispatcher features on 6.1 only', () => {
    expect(kamailioFeatures({ major: 5, minor: 6, patch: 3 })).to.deep.equal({
      retainLatencyStats: false,
      overloadControlAlg: false,
    });
    expect(kamailioFeatures({ major: 6, minor: 1, patch: 4 })).to.deep.equal({
      retainLatencyStats: true,
      overloadControlAlg: true,
    });
    expect(dispatcherAlgorithms({ major: 5, minor: 6, patch: 3 })).to.not.include(64);
    expect(dispatcherAlgorithms({ major: 6, minor: 1, patch: 4 })).to.include(64);
  });

  it('runs the matrix on SIPWEIGH_KAMAILIO alone when set, else on every installed Kamailio', () => {
    const all = (): boolean => true;
    const none = (): boolean => false;
    expect(kamailioMatrixBinaries('/x/kamailio', all)).to.deep.equal(['/x/kamailio']);
    expect(kamailioMatrixBinaries(undefined, all)).to.deep.equal(['/usr/sbin/kamailio', KAMAILIO_61_BINARY]);
    expect(kamailioMatrixBinaries('', (p) => p === '/usr/sbin/kamailio')).to.deep.equal([
      '/usr/sbin/kamailio',
    ]);
    // No distribution package in /usr/sbin: the PATH's kamailio stands in for it.
    expect(kamailioMatrixBinaries(undefined, none)).to.deep.equal(['kamailio']);
    expect(kamailioMatrixBinaries(undefined, (p) => p === KAMAILIO_61_BINARY)).to.deep.equal([
      'kamailio',
      KAMAILIO_61_BINARY,
    ]);
  });
});
