/** A UDP peer or listen address: the one shape for config, the heartbeat sockets and SIP OPTIONS. */
export interface UdpAddress {
  readonly address: string;
  readonly port: number;
}
