/**
 * The LB's own SIP socket in /metrics (lb_nodes[].sip_socket, controller/lb-socket.ts): its receive
 * queue, the kernel's drop counter, and whether it is measured at all. Only nodes that name a socket
 * have series; a node whose socket is unmeasured shows `sipweigh_lb_socket_measured 0` and no
 * figures (an absent queue must not read as an empty one).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ControllerSnapshot } from '../controller/snapshot.js';

export function lbSocketSeries(r: Registry, snap: () => ControllerSnapshot | null): void {
  const measured = () =>
    (snap()?.nodes ?? []).flatMap((n) =>
      n.sipSocket?.state === 'measured' ? [{ node: n.name, s: n.sipSocket }] : [],
    );
  new Gauge<'node'>({
    name: 'sipweigh_lb_socket_measured',
    help: "1 when the LB node's SIP UDP socket (lb_nodes[].sip_socket) is read from this host's /proc/net/udp, 0 when it cannot be (the API says why)",
    labelNames: ['node'],
    registers: [r],
    collect() {
      this.reset();
      for (const n of snap()?.nodes ?? [])
        if (n.sipSocket) this.set({ node: n.name }, n.sipSocket.state === 'measured' ? 1 : 0);
    },
  });
  new Gauge<'node'>({
    name: 'sipweigh_lb_rx_queue_bytes',
    help: "Receive queue of the LB node's SIP UDP socket: kernel memory holding datagrams the LB has not read yet",
    labelNames: ['node'],
    registers: [r],
    collect() {
      this.reset();
      for (const { node, s } of measured()) this.set({ node }, s.rxQueueBytes);
    },
  });
  new Counter<'node'>({
    name: 'sipweigh_lb_rx_drops_total',
    help: "Datagrams the kernel dropped on the LB node's SIP UDP socket (queue full); restarts with the LB",
    labelNames: ['node'],
    registers: [r],
    collect() {
      this.reset();
      for (const { node, s } of measured()) this.inc({ node }, s.drops);
    },
  });
}
