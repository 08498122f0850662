/** The log's second guard (src/util/logger.ts): known secret values are scrubbed wherever they travel in a line. */
import { expect } from 'chai';
import { Writable } from 'node:stream';
import { addLogSecrets, createLogger, scrubSecrets } from '../../src/util/logger.js';

describe('log secret scrubbing', function () {
  const key = Buffer.from('5e'.repeat(32), 'hex');
  const token = 'api-token-3c1d9a7b5e2f';
  addLogSecrets(key, token, 'short', undefined, null);

  it('replaces a known secret inside messages, nested fields, arrays and errors', async function () {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const log = createLogger('test', 'info', sink);
    log.info(
      {
        err: `401 for Bearer ${token}`,
        nested: { list: [`key=${key.toString('hex').toUpperCase()}`], e: new Error(`bad ${token}`) },
      },
      `reload failed: master ${key.toString('hex')}`,
    );
    await new Promise((r) => setImmediate(r));
    const text = lines.join('');
    expect(text).to.contain('[redacted]');
    for (const s of [token, key.toString('hex'), key.toString('hex').toUpperCase()])
      expect(text).to.not.contain(s);
    expect(text).to.contain('401 for Bearer');
  });

  it('leaves short values alone (they would scrub ordinary words)', function () {
    expect(scrubSecrets('a short note')).to.equal('a short note');
    expect(scrubSecrets(`x${token}y`)).to.equal('x[redacted]y');
  });
});
