import { readFile } from 'node:fs/promises';
import { type Authenticator, credsAuthenticator, type NatsConnection, nkeyAuthenticator } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { identityInboxPrefix, natsIdentityFromSeed } from './nats-auth.js';

export interface NatsConnectOptions {
  /** Comma-separated server URLs. */
  servers: string;
  /** Connection name, shown in the server's monitoring. */
  name: string;
  /**
   * Credentials when the server requires authentication: a `.creds` file (user JWT + NKey seed, decentralized auth)
   * or an NKey user seed file (`SU...`, the identities the operator generates; see nats-auth.ts).
   */
  credsFile?: string;
  /** An NKey user seed given directly (the operator holds its per-account seeds in memory). */
  nkeySeed?: string;
  /** Keep reconnecting forever (services) rather than giving up (one-shot jobs use the default). */
  reconnectForever?: boolean;
}

export async function connectNats(o: NatsConnectOptions): Promise<NatsConnection> {
  let authenticator: Authenticator | undefined;
  let inboxPrefix: string | undefined;
  if (o.nkeySeed) {
    const identity = natsIdentityFromSeed(o.nkeySeed);
    authenticator = nkeyAuthenticator(new TextEncoder().encode(identity.seed));
    inboxPrefix = identityInboxPrefix(identity.publicKey);
  } else if (o.credsFile) {
    let creds: Uint8Array;
    try {
      creds = await readFile(o.credsFile);
    } catch (e) {
      throw new Error(`cannot read NATS credentials '${o.credsFile}': ${(e as Error).message}`);
    }
    const text = new TextDecoder().decode(creds);
    if (text.includes('BEGIN NATS USER JWT')) authenticator = credsAuthenticator(creds);
    else {
      let identity: ReturnType<typeof natsIdentityFromSeed>;
      try {
        identity = natsIdentityFromSeed(text);
      } catch (e) {
        throw new Error(
          `NATS credentials '${o.credsFile}' are neither a .creds file nor an NKey seed: ${(e as Error).message}`,
        );
      }
      authenticator = nkeyAuthenticator(new TextEncoder().encode(identity.seed));
      // NKey users may subscribe only under their own inbox prefix (nats-auth.ts).
      inboxPrefix = identityInboxPrefix(identity.publicKey);
    }
  }
  try {
    return await connect({
      servers: o.servers.split(','),
      name: o.name,
      ...(authenticator ? { authenticator } : {}),
      ...(inboxPrefix ? { inboxPrefix } : {}),
      ...(o.reconnectForever ? { maxReconnectAttempts: -1 } : {}),
    });
  } catch (e) {
    throw new Error(`cannot connect to NATS at ${o.servers}: ${(e as Error).message}`);
  }
}
