import { expect } from 'chai';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/util/logger.js';

describe('logger', () => {
  it('writes JSON lines and never the secrets a config can hold', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        done();
      },
    });
    const log = createLogger('test', 'info', sink);
    log.info(
      {
        password: 'pw-1',
        rpc: { url: 'http://x', password: 'pw-2' },
        key: 'k-3',
        heartbeat: { master_key: 'mk-4' },
        token: 't-5',
      },
      'config loaded',
    );
    log.debug({ password: 'pw-6' }, 'below the level');
    await new Promise((r) => setImmediate(r));
    expect(lines).to.have.length(1);
    const rec = JSON.parse(lines[0]!) as { msg: string; rpc: { url: string } };
    expect(rec.msg).to.equal('config loaded');
    expect(rec.rpc.url).to.equal('http://x');
    for (const secret of ['pw-1', 'pw-2', 'k-3', 'mk-4', 't-5', 'pw-6'])
      expect(lines[0]).to.not.contain(secret);
  });
});
