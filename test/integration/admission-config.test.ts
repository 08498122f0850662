/**
 * `kamailio -c` accepts the LB configs with admission control on and off: lb.cfg (transparent and
 * stateful, with the lab's defines), and the snippet inside an operator's config that loads htable
 * itself with a table of its own, has its own event_route[htable:mod-init] and also uses the
 * admission hook. No pipelimit anywhere: the GCRA limiter needs only htable.
 */
import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lbDefines } from '../../src/lab/defines.js';
import { lbSettings } from '../../src/lab/lab.js';
import { kamailioCheck, type Defines } from '../../src/lab/kamailio.js';
import { planLab } from '../../src/lab/topology.js';
import { KAMAILIO_DIR, LAB_KAMAILIO_DIR } from '../support/harness.js';

const LB_CFG = join(LAB_KAMAILIO_DIR, 'lb.cfg');

function check(cfg: string, defines: Defines = {}): { ok: boolean; output: string } {
  return kamailioCheck(cfg, defines);
}

function expectAccepted(cfg: string, defines: Defines = {}): void {
  const r = check(cfg, defines);
  expect(r.ok, `kamailio -c ${cfg} ${JSON.stringify(defines)}:\n${r.output}`).to.equal(true);
}

/** An operator's config around the snippet: its own modules, htable included, loaded first. */
const operatorCfg = (defines: string, extraRoutes: string) => `#!KAMAILIO
listen=udp:127.8.2.40:5060
listen=tcp:127.8.2.40:5071 name "sipweigh_rpc"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "htable.so"
modparam("htable", "htable", "mine=>size=4;")
${defines}
include_file "${join(KAMAILIO_DIR, 'sipweigh-lb.cfg')}"
request_route {
	route(SIPWEIGH_LB);
}
${extraRoutes}
`;

describe('admission control: LB configs pass kamailio -c', function () {
  this.timeout(60000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'sipweigh-admission-config-'));
  });

  it('lb.cfg with SW_ADMISSION, its Retry-After, and the lab defines; also in stateful mode', () => {
    const plan = planLab({ backends: 2, net: 8 });
    const lab = lbDefines(lbSettings(plan, join(dir, 'dispatcher.list')));
    expectAccepted(LB_CFG, { SW_ADMISSION: true });
    expectAccepted(LB_CFG, { ...lab, SW_ADMISSION: true, SW_ADMISSION_RETRY_AFTER: 30 });
    expectAccepted(LB_CFG, { ...lab, SW_ADMISSION: true, SW_STATEFUL: true });
    expectAccepted(LB_CFG, { ...lab, SW_ADMISSION: false });
  });

  it('the snippet with admission in an operator config with its own htable, htable:mod-init route and admission hook', () => {
    const cfg = join(dir, 'operator-admission.cfg');
    writeFileSync(
      cfg,
      operatorCfg(
        '#!define SIPWEIGH_DS_SET 7\n#!define SIPWEIGH_ADMISSION_CONTROL\n#!define SIPWEIGH_NO_HTABLE_INIT_EVENT_ROUTE\n#!define SIPWEIGH_ADMISSION_HOOK',
        `route[SIPWEIGH_ADMISSION] {
	if ($si == "192.0.2.1") { sl_send_reply("403", "Forbidden"); exit; }
}
event_route[htable:mod-init] {
	$sht(mine=>started) = 1;
	route(SIPWEIGH_ADMISSION_INIT);
}`,
      ),
    );
    expectAccepted(cfg);
  });

  it('lb.cfg with the fair share off, the source groups file and the packet-rate guard', () => {
    const groups = join(dir, 'sources.list');
    writeFileSync(groups, '1 192.0.2.0 28\n2 198.51.100.7 32 0 trusted\n');
    expectAccepted(LB_CFG, { SW_ADMISSION: true, SW_NO_FAIR_SHARE: true });
    expectAccepted(LB_CFG, { SW_ADMISSION: true, SW_SOURCE_GROUPS_FILE: `"${groups}"` });
    expectAccepted(LB_CFG, { SW_ADMISSION: true, SW_GUARD: true, SW_GUARD_DENSITY: 500, SW_GUARD_UNIT: 1 });
    expectAccepted(LB_CFG, { SW_ADMISSION: false, SW_GUARD: true, SW_SOURCE_GROUPS_FILE: `"${groups}"` });
  });

  it('the snippet with fair share, groups, a source key hook and the guard in an operator config that loads permissions and pike itself', () => {
    const groups = join(dir, 'operator-sources.list');
    writeFileSync(groups, '# none yet\n');
    const cfg = join(dir, 'operator-fair.cfg');
    writeFileSync(
      cfg,
      operatorCfg(
        [
          'loadmodule "permissions.so"',
          'loadmodule "pike.so"',
          '#!define SIPWEIGH_ADMISSION_CONTROL',
          `#!define SIPWEIGH_SOURCE_GROUPS_FILE "${groups}"`,
          '#!define SIPWEIGH_SOURCE_KEY_HOOK',
          '#!define SIPWEIGH_GUARD',
        ].join('\n'),
        `route[SIPWEIGH_SOURCE_KEY] {
	if (is_present_hf("X-Trunk")) $var(sipweigh_src) = "t-" + $hdr(X-Trunk);
}`,
      ),
    );
    expectAccepted(cfg);
  });

  it('an operator config with its own htable:mod-init route is refused unless it defines SIPWEIGH_NO_HTABLE_INIT_EVENT_ROUTE', () => {
    const cfg = join(dir, 'operator-two-init-routes.cfg');
    writeFileSync(
      cfg,
      operatorCfg(
        '#!define SIPWEIGH_ADMISSION_CONTROL',
        `event_route[htable:mod-init] {
	$sht(mine=>started) = 1;
}`,
      ),
    );
    // Kamailio refuses a second definition of the same event route: the define is required.
    const r = check(cfg);
    expect(r.ok, r.output).to.equal(false);
    expect(r.output).to.match(/duplicate route/);
  });
});
