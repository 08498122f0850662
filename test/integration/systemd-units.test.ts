/**
 * The shipped systemd units (scripts/systemd): every hardening directive the deployment relies on is
 * there with the intended value, the ones that would break Node or the agent are not, and
 * `systemd-analyze verify` accepts both units without a single warning. systemd does not run here
 * (a container): verify loads the units from a temporary root, so nothing is started or installed.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT } from '../../src/cli/exit-codes.js';
import { REPO_ROOT } from '../support/harness.js';

const UNITS = ['sipweigh-controller.service', 'sipweigh-agent.service'] as const;

/** Unit file as section -> key -> every value given (systemd keys may repeat). */
type Unit = Map<string, Map<string, string[]>>;

function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = new Map();
      unit.set(header[1]!, section);
      continue;
    }
    const eq = line.indexOf('=');
    if (!section || eq < 0) throw new Error(`not a unit file line: ${raw}`);
    const key = line.slice(0, eq);
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1)]);
  }
  return unit;
}

function readUnit(name: string): Unit {
  return parseUnit(readFileSync(join(REPO_ROOT, 'scripts/systemd', name), 'utf8'));
}

function values(unit: Unit, section: string, key: string): string[] {
  return unit.get(section)?.get(key) ?? [];
}

/**
 * A root systemd-analyze can verify the units in: the host's unit library (targets the units name),
 * the commands they run (a stub launcher, /bin/kill) and the units themselves with any drop-ins.
 */
function verifyRoot(dir: string, launcher = '#!/bin/sh\nexit 0\n'): string {
  mkdirSync(join(dir, 'usr/lib/systemd'), { recursive: true });
  cpSync('/usr/lib/systemd/system', join(dir, 'usr/lib/systemd/system'), {
    recursive: true,
    verbatimSymlinks: true,
  });
  mkdirSync(join(dir, 'bin'), { recursive: true });
  cpSync('/bin/kill', join(dir, 'bin/kill'));
  mkdirSync(join(dir, 'usr/local/bin'), { recursive: true });
  writeFileSync(join(dir, 'usr/local/bin/sipweigh'), launcher);
  chmodSync(join(dir, 'usr/local/bin/sipweigh'), 0o755);
  mkdirSync(join(dir, 'etc/systemd/system'), { recursive: true });
  return dir;
}

describe('systemd units (scripts/systemd)', function () {
  this.timeout(120000);
  const work = mkdtempSync(join(tmpdir(), 'sipweigh-systemd-'));
  after(() => rmSync(work, { recursive: true, force: true }));

  for (const name of UNITS) {
    describe(name, () => {
      const unit = readUnit(name);
      const service = (key: string) => values(unit, 'Service', key);

      it('runs as its own user on a read-only system with no privileges', () => {
        expect(service('User')).to.deep.equal(['sipweigh']);
        expect(service('Group')).to.deep.equal(['sipweigh']);
        expect(service('ProtectSystem')).to.deep.equal(['strict']);
        for (const key of [
          'ProtectHome',
          'PrivateTmp',
          'PrivateDevices',
          'NoNewPrivileges',
          'ProtectKernelTunables',
          'ProtectKernelModules',
          'ProtectKernelLogs',
          'ProtectControlGroups',
          'ProtectClock',
          'ProtectHostname',
          'LockPersonality',
          'RestrictNamespaces',
          'RestrictRealtime',
          'RestrictSUIDSGID',
        ]) {
          expect(service(key), key).to.deep.equal(['yes']);
        }
        // An empty bounding set: no capability at all, even for a setuid binary.
        expect(service('CapabilityBoundingSet')).to.deep.equal(['']);
        expect(service('AmbientCapabilities')).to.deep.equal(['']);
        expect(service('RestrictAddressFamilies')).to.deep.equal(['AF_UNIX AF_INET AF_INET6']);
        expect(service('SystemCallFilter')).to.include('@system-service');
        expect(service('SystemCallArchitectures')).to.deep.equal(['native']);
        expect(service('ProtectProc')).to.deep.equal(['invisible']);
      });

      it('leaves out what would break Node or the measurements', () => {
        // V8's JIT needs writable+executable pages: Node aborts under MemoryDenyWriteExecute.
        expect(service('MemoryDenyWriteExecute')).to.deep.equal([]);
        // ProcSubset=pid hides /proc/net/udp, /proc/stat, /proc/loadavg, /proc/meminfo.
        expect(service('ProcSubset')).to.deep.equal([]);
        expect(service('PrivateNetwork')).to.deep.equal([]);
      });

      it('restarts on failure, within a start limit, but not after a refused config', () => {
        expect(service('Restart')).to.deep.equal(['on-failure']);
        expect(service('RestartSec')).to.have.length(1);
        expect(values(unit, 'Unit', 'StartLimitIntervalSec')).to.have.length(1);
        expect(values(unit, 'Unit', 'StartLimitBurst')).to.have.length(1);
        expect(service('RestartPreventExitStatus')).to.deep.equal([String(EXIT.badConfig)]);
        expect(service('TimeoutStopSec')).to.have.length(1);
        expect(values(unit, 'Install', 'WantedBy')).to.deep.equal(['multi-user.target']);
      });
    });
  }

  it('controller: reloads with SIGHUP and may write only its state directory', () => {
    const unit = readUnit('sipweigh-controller.service');
    expect(values(unit, 'Service', 'ExecReload')).to.deep.equal(['/bin/kill -HUP $MAINPID']);
    expect(values(unit, 'Service', 'ExecStart')).to.deep.equal([
      '/usr/local/bin/sipweigh controller --config /etc/sipweigh/controller.yaml',
    ]);
    expect(values(unit, 'Service', 'StateDirectory')).to.deep.equal(['sipweigh']);
    expect(values(unit, 'Service', 'ReadWritePaths')).to.deep.equal(['/var/lib/sipweigh']);
  });

  it('agent: reloads its keys with SIGHUP, no state, nothing writable', () => {
    const unit = readUnit('sipweigh-agent.service');
    expect(values(unit, 'Service', 'ExecReload')).to.deep.equal(['/bin/kill -HUP $MAINPID']);
    expect(values(unit, 'Service', 'ExecStart')).to.deep.equal([
      '/usr/local/bin/sipweigh agent --config /etc/sipweigh/agent.yaml',
    ]);
    expect(values(unit, 'Service', 'StateDirectory')).to.deep.equal([]);
    expect(values(unit, 'Service', 'ReadWritePaths')).to.deep.equal([]);
  });

  it('systemd-analyze verify accepts both units without a warning', () => {
    const root = verifyRoot(join(work, 'root'));
    for (const name of UNITS)
      cpSync(join(REPO_ROOT, 'scripts/systemd', name), join(root, 'etc/systemd/system', name));
    const r = spawnSync('systemd-analyze', ['verify', `--root=${root}`, ...UNITS], {
      encoding: 'utf8',
      timeout: 60000,
    });
    expect(r.error, 'systemd-analyze must be installed (scripts/setup.sh installs systemd)').to.equal(
      undefined,
    );
    expect(r.stderr + r.stdout).to.equal('');
    expect(r.status).to.equal(0);
  });

  it('systemd-analyze verify catches a misspelt directive (the check can fail)', () => {
    const root = verifyRoot(join(work, 'root-bad'));
    const text = readFileSync(join(REPO_ROOT, 'scripts/systemd', UNITS[1]), 'utf8').replace(
      'ProtectClock=yes',
      'ProtectClok=yes',
    );
    writeFileSync(join(root, 'etc/systemd/system', UNITS[1]), text);
    const r = spawnSync('systemd-analyze', ['verify', `--root=${root}`, UNITS[1]], {
      encoding: 'utf8',
      timeout: 60000,
    });
    expect(r.stderr).to.contain("Unknown key 'ProtectClok'");
  });
});
