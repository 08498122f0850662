/** The whole list an LB node is given (pure): one line per set and URI, whoever claims it. */
import { expect } from 'chai';
import { desiredDestinations, destinationState, type ListedBackend } from '../../src/push/desired-list.js';
import { formatDispatcherList } from '../../src/kamailio/dispatcher-list.js';

const backend = (id: string, uri: string, source: ListedBackend['source']): ListedBackend => ({
  id,
  set: 1,
  uri,
  capacity: 100,
  agent: null,
  source,
});

describe('controller: the desired dispatcher list', function () {
  it('a self-registered backend announcing a configured URI does not make the list unwritable', function () {
    const list = desiredDestinations(
      [
        backend('a-hello', 'sip:127.0.0.11:5060', 'hello'),
        backend('be1', 'sip:127.0.0.11:5060', 'config'),
        backend('be2', 'sip:127.0.0.12:5060', 'config'),
      ],
      () => 50,
    );
    expect(list.map((d) => d.duid)).to.deep.equal(['be1', 'be2']);
    expect(() => formatDispatcherList(list)).to.not.throw();
  });

  it('the same URI in two sets is two destinations', function () {
    const list = desiredDestinations(
      [
        backend('be1', 'sip:127.0.0.11:5060', 'config'),
        { ...backend('be1b', 'sip:127.0.0.11:5060', 'config'), set: 2 },
      ],
      () => 50,
    );
    expect(list.map((d) => `${d.setId} ${d.duid}`)).to.deep.equal(['1 be1', '2 be1b']);
  });

  it('a draining backend is written disabled (skipped by the LB probing), a down one inactive', function () {
    const list = desiredDestinations(
      [
        { ...backend('be1', 'sip:127.0.0.11:5060', 'config'), health: { kind: 'draining' } },
        { ...backend('be2', 'sip:127.0.0.12:5060', 'config'), health: { kind: 'down' } },
        { ...backend('be3', 'sip:127.0.0.13:5060', 'config'), health: { kind: 'up' } },
      ],
      (id) => (id === 'be3' ? 40 : 0),
    );
    expect(list.map((d) => `${d.duid} ${d.state}`)).to.deep.equal([
      'be1 disabled',
      'be2 inactive',
      'be3 active',
    ]);
    // Flag 4 in the file: Kamailio lists it D and its OPTIONS probing never pings it.
    expect(formatDispatcherList(list)).to.match(/^1 sip:127\.0\.0\.11:5060 4 0 duid=be1;rweight=1$/m);
  });

  it('destinationState: draining wins over any weight', function () {
    expect(destinationState({ health: { kind: 'draining' } }, 30)).to.equal('disabled');
    expect(destinationState({ health: { kind: 'suspect' } }, 30)).to.equal('active');
    expect(destinationState({}, 0)).to.equal('inactive');
  });
});
