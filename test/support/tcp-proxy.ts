/**
 * A TCP relay the tests can cut: stands between the controller and an LB's JSON-RPC port so that
 * "the LB is unreachable" is a real refused connection, while the LB itself keeps serving calls.
 * While down it accepts and drops every connection at once, counting the attempts (a controller
 * that spins shows up here).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private up = true;
  private readonly open = new Set<Socket>();
  /** Connections attempted while down. */
  refusedWhileDown = 0;
  accepted = 0;

  private constructor(private readonly server: Server) {}

  static async start(opts: {
    listen: { address: string; port: number };
    target: { address: string; port: number };
    /** Source address towards the target (an LB allow-list may require it). */
    localAddress?: string;
  }): Promise<TcpProxy> {
    const server = createServer();
    const proxy = new TcpProxy(server);
    server.on('connection', (client) => proxy.relay(client, opts.target, opts.localAddress));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.listen.port, opts.listen.address, () => resolve());
    });
    return proxy;
  }

  private relay(client: Socket, target: { address: string; port: number }, localAddress?: string): void {
    if (!this.up) {
      this.refusedWhileDown++;
      client.destroy();
      return;
    }
    this.accepted++;
    const upstream = connect({
      host: target.address,
      port: target.port,
      ...(localAddress ? { localAddress } : {}),
    });
    for (const s of [client, upstream]) {
      this.open.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        this.open.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  setUp(up: boolean): void {
    this.up = up;
    if (!up) for (const s of this.open) s.destroy();
  }

  async close(): Promise<void> {
    for (const s of this.open) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
