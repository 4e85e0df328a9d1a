import { readFile } from 'node:fs/promises';
import { credsAuthenticator, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';

export interface NatsConnectOptions {
  /** Comma-separated server URLs. */
  servers: string;
  /** Connection name, shown in the server's monitoring. */
  name: string;
  /** A `.creds` file (user JWT + NKey seed) when the server requires authentication. */
  credsFile?: string;
  /** Keep reconnecting forever (services) rather than giving up (one-shot jobs use the default). */
  reconnectForever?: boolean;
}

export async function connectNats(o: NatsConnectOptions): Promise<NatsConnection> {
  let authenticator: ReturnType<typeof credsAuthenticator> | undefined;
  if (o.credsFile) {
    let creds: Uint8Array;
    try {
      creds = await readFile(o.credsFile);
    } catch (e) {
      throw new Error(`cannot read NATS credentials '${o.credsFile}': ${(e as Error).message}`);
    }
    authenticator = credsAuthenticator(creds);
  }
  try {
    return await connect({
      servers: o.servers.split(','),
      name: o.name,
      ...(authenticator ? { authenticator } : {}),
      ...(o.reconnectForever ? { maxReconnectAttempts: -1 } : {}),
    });
  } catch (e) {
    throw new Error(`cannot connect to NATS at ${o.servers}: ${(e as Error).message}`);
  }
}
