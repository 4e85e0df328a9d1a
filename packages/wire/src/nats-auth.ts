import { nkeys } from '@nats-io/nats-core';
import {
  ADAPTERS_BUCKET,
  type FederationRef,
  progressSubject,
  ROUNDS_BUCKET,
  UPDATES_STREAM,
  UPLOADS_BUCKET,
  updateSubject,
} from './names.js';

/**
 * NATS identities and least privilege. Each federation is its own NATS *account*: its stream, round records and
 * adapters live in that account's JetStream, so nothing of another federation is even addressable from it. Inside
 * the account every party is an NKey user with subject permissions:
 * - a client publishes only its own update and progress subjects, reads round records and adapters, and writes
 *   oversized updates to the uploads bucket; it cannot write round records, adapters or another client's subjects;
 * - the aggregator consumes updates and writes round records and adapters, but cannot publish updates;
 * - the operator manages the account's JetStream assets.
 * Each user receives replies only on its own inbox prefix (`_INBOX.<public key>`), so clients cannot read the
 * replies (round records, acks) other users asked for.
 */
export type NatsRole = { kind: 'operator' } | { kind: 'aggregator' } | { kind: 'client'; client: string };

export interface NatsIdentity {
  /** Public NKey (U...), what the server config lists. */
  publicKey: string;
  /** Private seed (SU...), what the party's Secret or file holds. */
  seed: string;
}

export interface NatsPermissions {
  publish: { allow: string[]; deny?: string[] };
  subscribe: { allow: string[]; deny?: string[] };
}

export function createNatsIdentity(): NatsIdentity {
  const kp = nkeys.createUser();
  return { publicKey: kp.getPublicKey(), seed: new TextDecoder().decode(kp.getSeed()) };
}

/** Parses a seed file's text back into the identity; throws a clear error on anything else. */
export function natsIdentityFromSeed(text: string): NatsIdentity {
  const seed = text.trim();
  try {
    const kp = nkeys.fromSeed(new TextEncoder().encode(seed));
    const publicKey = kp.getPublicKey();
    if (!publicKey.startsWith('U')) throw new Error(`it is not a user seed (public key ${publicKey.slice(0, 1)}...)`);
    return { publicKey, seed };
  } catch (e) {
    throw new Error(`not a NATS user NKey seed: ${(e as Error).message}`);
  }
}

/** The NATS account of a federation. */
export const federationAccount = (f: FederationRef): string => `fednano-${f.namespace}-${f.federation}`;

/** The only inbox prefix a user may subscribe under; connectNats uses it for NKey identities. */
export const identityInboxPrefix = (publicKey: string): string => `_INBOX.${publicKey}`;

const api = (...tail: string[]) => `$JS.API.${tail.join('.')}`;
const kvStream = `KV_${ROUNDS_BUCKET}`;
const adaptersStream = `OBJ_${ADAPTERS_BUCKET}`;
const uploadsStream = `OBJ_${UPLOADS_BUCKET}`;

/** What one role may do inside its federation's account (see the module comment). */
export function rolePermissions(f: FederationRef, role: NatsRole, publicKey: string): NatsPermissions {
  const inbox = [`${identityInboxPrefix(publicKey)}.>`];
  switch (role.kind) {
    case 'client': {
      const readable = [kvStream, adaptersStream];
      return {
        publish: {
          allow: [
            updateSubject(f, '*', role.client),
            progressSubject(f, '*', role.client),
            api('INFO'),
            ...[...readable, uploadsStream].map((s) => api('STREAM', 'INFO', s)),
            // Reading round records and adapters: direct/message gets and the ordered consumers of watches/gets.
            ...readable.flatMap((s) => [
              api('DIRECT', 'GET', s),
              api('DIRECT', 'GET', s, '>'),
              api('STREAM', 'MSG', 'GET', s),
              api('CONSUMER', 'CREATE', s, '>'),
              api('CONSUMER', 'DELETE', s, '>'),
              api('CONSUMER', 'INFO', s, '>'),
            ]),
            // Oversized updates go to the uploads bucket (never the adapters bucket): its meta lookups and writes.
            api('DIRECT', 'GET', uploadsStream, '>'),
            api('STREAM', 'MSG', 'GET', uploadsStream),
            `$O.${UPLOADS_BUCKET}.C.>`,
            `$O.${UPLOADS_BUCKET}.M.>`,
            '$JS.FC.>',
          ],
        },
        subscribe: { allow: inbox },
      };
    }
    case 'aggregator':
      return {
        publish: {
          allow: [api('>'), `$KV.${ROUNDS_BUCKET}.>`, `$O.${ADAPTERS_BUCKET}.>`, '$JS.ACK.>', '$JS.FC.>'],
          // The aggregator counts updates; it must not be able to forge them or drop the stream.
          deny: [`fednano.*.*.round.*.update.*`, api('STREAM', 'DELETE', '>'), api('STREAM', 'PURGE', UPDATES_STREAM)],
        },
        subscribe: { allow: inbox },
      };
    case 'operator':
      // Everything in the account, and it may follow client progress.
      return { publish: { allow: ['>'] }, subscribe: { allow: [...inbox, progressSubject(f, '*', '*')] } };
  }
}

export interface FederationIdentities {
  ref: FederationRef;
  operator: NatsIdentity;
  aggregator: NatsIdentity;
  clients: Record<string, NatsIdentity>;
}

/** Fresh identities for a federation's operator, aggregator and clients. */
export function createFederationIdentities(ref: FederationRef, clients: readonly string[]): FederationIdentities {
  return {
    ref,
    operator: createNatsIdentity(),
    aggregator: createNatsIdentity(),
    clients: Object.fromEntries(clients.map((c) => [c, createNatsIdentity()])),
  };
}

/**
 * The `accounts` block of a nats-server config for these federations (NATS config accepts JSON): one account per
 * federation with JetStream on and one NKey user per party. Included from the server's main config; reloading the
 * server (SIGHUP, or the NATS chart's config reloader) applies changes without dropping other connections.
 */
export function natsAccountsConfig(federations: readonly FederationIdentities[]): string {
  const accounts: Record<string, unknown> = {};
  for (const fi of [...federations].sort((a, b) => federationAccount(a.ref).localeCompare(federationAccount(b.ref)))) {
    const user = (id: NatsIdentity, role: NatsRole) => ({
      nkey: id.publicKey,
      permissions: rolePermissions(fi.ref, role, id.publicKey),
    });
    accounts[federationAccount(fi.ref)] = {
      jetstream: 'enabled',
      users: [
        user(fi.operator, { kind: 'operator' }),
        user(fi.aggregator, { kind: 'aggregator' }),
        ...Object.keys(fi.clients)
          .sort()
          .map((c) => user(fi.clients[c]!, { kind: 'client', client: c })),
      ],
    };
  }
  return `accounts: ${JSON.stringify(accounts, null, 2)}\n`;
}
