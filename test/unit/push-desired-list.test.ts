/** The whole list an LB node is given (pure): one line per set and URI, whoever claims it. */
import { expect } from 'chai';
import { desiredDestinations, type ListedBackend } from '../../src/push/desired-list.js';
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
});
