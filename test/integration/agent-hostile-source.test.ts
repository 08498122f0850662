/**
 * The agent answers a probe at its source address. A source address is not authenticated: anyone on
 * the path can re-send a captured (authentic, fresh) probe from a forged source before the real one
 * arrives. UDP source port 0 makes Node's socket.send throw synchronously (ERR_SOCKET_BAD_PORT); that
 * must cost one report, not the agent (an unhandled rejection ends a Node process).
 * A raw socket (python3, root) forges the source port; addresses in 127.0.6.0/24.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { runAgent, type AgentHandle } from '../../src/agent/index.js';
import { decodeDatagram, encodeMessage, typeMask } from '../../src/heartbeat/codec.js';
import { deriveBackendKey, heartbeatKey } from '../../src/heartbeat/keys.js';
import { AGENT_SENDS, type HeartbeatMessage } from '../../src/heartbeat/messages.js';
import type { AgentConfig } from '../../src/config/types.js';
import { eventually, sleep } from '../support/harness.js';

const MASTER = Buffer.alloc(32, 0x66);
const BACKEND = 'be-hostile';
const KEY = heartbeatKey(deriveBackendKey(MASTER, BACKEND));

/** Sends `payload` as one UDP datagram with source port 0, from `src` to `dst:port`, through a raw socket. */
function sendFromPortZero(payload: Buffer, src: string, dst: string, port: number): void {
  const script = [
    'import socket, struct, sys',
    'data = bytes.fromhex(sys.argv[1])',
    's = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)',
    's.bind((sys.argv[2], 0))',
    "s.sendto(struct.pack('!HHHH', 0, int(sys.argv[4]), 8 + len(data), 0) + data, (sys.argv[3], 0))",
  ].join('\n');
  execFileSync('python3', ['-c', script, payload.toString('hex'), src, dst, String(port)], {
    timeout: 10000,
  });
}

describe('integration: agent against probes from a forged source', function () {
  this.timeout(30000);
  let controller: Socket;
  let agent: AgentHandle | undefined;
  const reports: HeartbeatMessage[] = [];
  const rejections: unknown[] = [];
  const onRejection = (e: unknown) => rejections.push(e);

  before(async function () {
    controller = createSocket('udp4');
    controller.on('message', (buf) => {
      const d = decodeDatagram(buf, (id) => (id === BACKEND ? [KEY] : undefined), typeMask(AGENT_SENDS));
      if (d.ok && d.msg.type === 'report') reports.push(d.msg);
    });
    await new Promise<void>((r) => controller.bind(0, '127.0.6.1', () => r()));
    const config: AgentConfig = {
      kind: 'agent',
      backend_id: BACKEND,
      set: 1,
      listen: { address: '127.0.6.2', port: 0 },
      controller: { address: '127.0.6.1', port: controller.address().port },
      key: deriveBackendKey(MASTER, BACKEND),
      capacity: 10,
      draining: false,
      sip: { address: '127.0.6.2', port: 5099 },
      collect_interval_ms: 100,
      logging: { level: 'info' },
    };
    // Mocha reports an unhandled rejection only as a generic failure; record them to name the cause.
    process.prependListener('unhandledRejection', onRejection);
    agent = await runAgent(config, undefined, { signals: false, collectors: [] });
  });
  after(async function () {
    process.off('unhandledRejection', onRejection);
    await agent?.stop('test over', false);
    controller?.close();
  });

  it('survives an authentic probe re-sent from source port 0 and still answers the real controller', async function () {
    let seq = 1;
    const probe = () =>
      encodeMessage(
        { type: 'probe', backendId: BACKEND, seq: seq++, ts: Date.now(), boot: 'ctrlboot-hostile' },
        KEY,
      );
    sendFromPortZero(probe(), '127.0.6.1', '127.0.6.2', agent!.address.port);
    await eventually(() => agent!.counters().received >= 1, 'the forged datagram arrived');
    await sleep(200);
    expect(rejections, 'unhandled rejections').to.deep.equal([]);
    controller.send(probe(), agent!.address.port, '127.0.6.2');
    await eventually(() => reports.length >= 1, 'a report to the real controller');
    expect(reports[0]).to.include({ type: 'report', echoSeq: 2 });
  });
});
