/**
 * A minimal controller config with an `admission.fairness` block: the one text the fair-admission
 * config tests refuse or accept, whether through `loadControllerConfig` or `sipweigh validate`.
 */
export function controllerWithFairness(fairness: string, addressFile = true): string {
  return `kind: controller
heartbeat:
  listen: { address: 127.0.0.10, port: 7950 }
  master_key: ${'ab'.repeat(32)}
lb_nodes:
  - name: lb1
    rpc: { url: "http://127.0.0.10:5071/RPC" }
    dispatcher_list: { path: /tmp/ds.list }
${addressFile ? '    address_file: /tmp/sources.list\n' : ''}sets:
  - id: 1
    backends:
      - { id: be1, sip_uri: "sip:127.0.0.11", capacity: 100, agent: { address: 127.0.0.11, port: 7951 } }
admission:
  fairness:
${fairness}`;
}
