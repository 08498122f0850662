/**
 * Discovery against a real Kamailio 5.6 (dispatcher + jsonrpcs over HTTP) on 127.0.3.40-41:
 * fetch dispatcher.list through the project's RPC client, parse it, merge it with a config.
 */
import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startKamailio } from '../../src/lab/kamailio.js';
import { KamailioRpcClient } from '../../src/kamailio/rpc.js';
import { fetchDispatcherList } from '../../src/kamailio/fetch-dispatcher-list.js';
import { mergeDiscovery } from '../../src/discovery/merge.js';
import { useProcessGroup } from '../support/harness.js';

const CFG = `#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_accept_no_cl=yes
listen=udp:SW_IP:5060
listen=tcp:SW_IP:5071
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "xhttp.so"
loadmodule "jsonrpcs.so"
loadmodule "dispatcher.so"
modparam("jsonrpcs", "transport", 7)
modparam("dispatcher", "list_file", SW_LIST)
request_route { sl_send_reply("404", "Not here"); }
event_route[xhttp:request] { jsonrpc_dispatch(); }
`;

const LIST = `# set destination flags priority attrs
1 sip:127.0.3.45:5060 0 0 duid=be-a;sw_agent=127.0.3.45:7070;sw_capacity=150
1 sip:127.0.3.46:5060 1 0 duid=be-b
7 sip:127.0.3.47:5060 0 0 duid=be-x
`;

describe('discovery: dispatcher.list of a real Kamailio', function () {
  this.timeout(60_000);
  const h = useProcessGroup('discovery');
  const clients: KamailioRpcClient[] = [];
  after(() => clients.forEach((c) => c.close()));

  async function kamailio(name: string, ip: string, list: string) {
    const dir = h.group.runDir;
    const cfg = join(dir, `${name}.cfg`);
    const listFile = join(dir, `${name}.list`);
    writeFileSync(cfg, CFG);
    writeFileSync(listFile, list);
    await startKamailio(h.group, {
      name,
      cfg,
      defines: { SW_IP: ip, SW_LIST: `"${listFile}"` },
      waitFor: [{ transport: 'tcp', address: ip, port: 5071 }],
      shmMb: 32,
    });
    const c = new KamailioRpcClient({ url: `http://${ip}:5071/RPC` });
    clients.push(c);
    return c;
  }

  it('fetches, parses and merges the destinations of the managed sets', async function () {
    const rpc = await kamailio('lb-disc', '127.0.3.40', LIST);
    const r = await fetchDispatcherList(rpc);
    expect(r.ok, r.ok ? '' : r.error).to.equal(true);
    if (!r.ok) return;
    expect(r.targets.map((t) => [t.setId, t.uri, t.state, t.duid]).sort()).to.deep.equal(
      [
        [1, 'sip:127.0.3.45:5060', 'active', 'be-a'],
        [1, 'sip:127.0.3.46:5060', 'inactive', 'be-b'],
        [7, 'sip:127.0.3.47:5060', 'active', 'be-x'],
      ].sort(),
    );
    const merged = mergeDiscovery(
      [{ id: 1, self_registration: false, backends: [] }],
      [{ node: 'lb-disc', targets: r.targets }],
      { defaultCapacity: 100 },
    );
    // (Kamailio lists a set's destinations in its own internal order.)
    expect(merged.backends.map((b) => [b.id, b.capacity, b.agent?.port ?? null]).sort()).to.deep.equal([
      ['be-a', 150, 7070],
      ['be-b', 100, null],
    ]);
    expect(merged.notes).to.deep.equal([
      { kind: 'unmanaged_set', node: 'lb-disc', setId: 7, uri: 'sip:127.0.3.47:5060' },
    ]);
  });

  it('an empty dispatcher is an empty list; an unreachable LB is an error, not a throw', async function () {
    const rpc = await kamailio('lb-empty', '127.0.3.41', '');
    expect(await fetchDispatcherList(rpc)).to.deep.equal({ ok: true, targets: [] });
    const dead = new KamailioRpcClient({ url: 'http://127.0.3.42:5071/RPC', deadlineMs: 1000 });
    clients.push(dead);
    const r = await fetchDispatcherList(dead);
    expect(r.ok).to.equal(false);
  });
});
