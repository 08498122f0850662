/** Several remote commands in one exec, split again by their markers (pure). */
import { expect } from 'chai';
import { buildSectionedCommand, parseSections } from '../../src/metrics/sections.js';
import { sshCollectorOptions } from '../../src/metrics/ssh-config.js';

describe('metrics: sectioned remote output', function () {
  it('builds one shell line with begin/end markers and each exit status', function () {
    const cmd = buildSectionedCommand([
      { name: 'stat', command: 'cat /proc/stat' },
      { name: 'udp6', command: 'cat /proc/net/udp6' },
    ]);
    expect(cmd).to.equal(
      "echo '@@sipweigh-begin stat'; { cat /proc/stat ; } 2>&1; printf '\\n@@sipweigh-end stat %s\\n' $?; " +
        "echo '@@sipweigh-begin udp6'; { cat /proc/net/udp6 ; } 2>&1; printf '\\n@@sipweigh-end udp6 %s\\n' $?",
    );
    expect(() => buildSectionedCommand([{ name: 'a b', command: 'x' }])).to.throw('bad section name');
  });

  it('splits outputs, keeps each one byte for byte, and reports failures per section', function () {
    const out =
      '@@sipweigh-begin stat\ncpu  1 2 3 4\n\n@@sipweigh-end stat 0\n' +
      '@@sipweigh-begin loadavg\n0.1 0.2 0.3 1/2 3\n\n@@sipweigh-end loadavg 0\n' +
      '@@sipweigh-begin udp6\ncat: /proc/net/udp6: No such file or directory\n\n@@sipweigh-end udp6 1\n' +
      '@@sipweigh-begin empty\n\n@@sipweigh-end empty 0\n' +
      '@@sipweigh-begin nonl\nno newline\n@@sipweigh-end nonl 0\n';
    const s = parseSections(out);
    expect(s.get('stat')).to.deep.equal({ ok: true, output: 'cpu  1 2 3 4\n' });
    expect(s.get('loadavg')).to.deep.equal({ ok: true, output: '0.1 0.2 0.3 1/2 3\n' });
    expect(s.get('udp6')).to.deep.equal({
      ok: false,
      status: 1,
      output: 'cat: /proc/net/udp6: No such file or directory\n',
    });
    expect(s.get('empty')).to.deep.equal({ ok: true, output: '' });
    expect(s.get('nonl')).to.deep.equal({ ok: true, output: 'no newline\n' });
  });

  it('leaves out a section whose end never came (exec cut short)', function () {
    const s = parseSections(
      '@@sipweigh-begin stat\ncpu 1 2 3 4\n\n@@sipweigh-end stat 0\n@@sipweigh-begin meminfo\nMemTotal: 1 kB\n',
    );
    expect([...s.keys()]).to.deep.equal(['stat']);
    expect(parseSections('').size).to.equal(0);
    expect(parseSections('garbage\n@@sipweigh-end stat 0\n').size).to.equal(0);
  });
});

describe('metrics: SSH collector options from the controller config', function () {
  const cfg = {
    host: 'be1.example',
    port: 22,
    username: 'sipweigh',
    private_key_file: '/etc/sipweigh/id_ed25519',
    host_fingerprint: 'SHA256:' + 'A'.repeat(43),
    interval_ms: 2000,
    kamcmd: true,
    sip_port: 5080,
  };

  it('maps every field, reading the key once', function () {
    const reads: string[] = [];
    const o = sshCollectorOptions(cfg, (p) => (reads.push(p), Buffer.from('KEY')));
    expect(reads).to.deep.equal(['/etc/sipweigh/id_ed25519']);
    expect(o.ssh).to.include({
      host: 'be1.example',
      port: 22,
      username: 'sipweigh',
      hostFingerprint: cfg.host_fingerprint,
    });
    expect(o).to.deep.include({
      kamcmd: {},
      sipSocket: { port: 5080 },
    });
    expect(sshCollectorOptions({ ...cfg, kamcmd: false }, () => Buffer.from('K'))).to.not.have.property(
      'kamcmd',
    );
  });

  it('names the key file when it cannot be read', function () {
    expect(() =>
      sshCollectorOptions(cfg, () => {
        throw new Error('ENOENT');
      }),
    ).to.throw('cannot read private_key_file /etc/sipweigh/id_ed25519: ENOENT');
  });
});
