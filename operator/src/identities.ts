import { X509Certificate } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import {
  type CertificateAuthority,
  certificateNotAfter,
  createCertificateAuthority,
  createNatsIdentity,
  type FederationIdentities,
  type FederationRef,
  issueCertificate,
  type NatsIdentity,
  natsAccountsConfig,
  natsIdentityFromSeed,
  peerIdentity,
  type WorkloadIdentity,
} from '@fednano/wire';
import type { V1Secret } from '@kubernetes/client-node';
import type { Kube } from './kube.js';
import { llmHostName, ownerRef } from './resources.js';
import { type Federation, LABELS, MANAGER } from './types.js';

/**
 * Identities the operator issues for each Federation, kept in Secrets so that a restarted operator finds them:
 * - NATS: an account per federation with NKey users for the operator, the aggregator and each client
 *   (`<fed>-nats-identities` holds the seeds; the accounts config for the NATS server, public keys and subject
 *   permissions only, goes to one Secret the NATS server includes);
 * - mutual TLS: a CA per federation (`<fed>-ca`), a server certificate for the llm-host (`<fed>-llm-host-tls`, with
 *   the revocation list) and a client certificate per client. Certificates are short-lived and renewed when a third
 *   of their lifetime is left; a client removed from the roster loses its Secret, its NATS user, and its certificate
 *   serial is revoked at the llm-host until the certificate would have expired anyway.
 * Each party's own Secret (`<fed>-<client>-identity`, `<fed>-aggregator-identity`) holds only what it needs.
 */
export interface SecuritySettings {
  /** Issue NATS accounts and users, and write the accounts config into this Secret (key `accounts.conf`). */
  natsAccounts?: { namespace: string; name: string };
  /** Run the llm-host with mutual TLS and certificates from a per-federation CA. */
  mtls?: boolean;
  /** Lifetime of issued leaf certificates (default 24 h). */
  certificateLifetimeMs?: number;
}

export const SECRET_KEYS = {
  natsCreds: 'nats.creds',
  cert: 'tls.crt',
  key: 'tls.key',
  ca: 'ca.crt',
  revoked: 'revoked-serials',
  accounts: 'accounts.conf',
} as const;

export const identitySecrets = {
  ca: (f: Federation) => `${f.metadata.name}-ca`,
  nats: (f: Federation) => `${f.metadata.name}-nats-identities`,
  aggregator: (f: Federation) => `${f.metadata.name}-aggregator-identity`,
  llmHost: (f: Federation) => `${f.metadata.name}-llm-host-tls`,
  client: (f: Federation, client: string) => `${f.metadata.name}-${client}-identity`,
};

const COMPONENT = 'app.kubernetes.io/component';
const DEFAULT_LIFETIME_MS = 24 * 3_600_000;

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString();

function secretData(s: V1Secret | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(s?.data ?? {}).map(([k, v]) => [k, unb64(v)]));
}

function secret(
  f: Federation | undefined,
  namespace: string,
  name: string,
  component: string,
  data: Record<string, string>,
  extraLabels: Record<string, string> = {},
): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: {
      name,
      namespace,
      labels: {
        [LABELS.managedBy]: MANAGER,
        [COMPONENT]: component,
        ...(f ? { [LABELS.federation]: f.metadata.name! } : {}),
        ...extraLabels,
      },
      ...(f ? { ownerReferences: [ownerRef(f)] } : {}),
    },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
  };
}

/** Creates or replaces a Secret when its data differs; true when it wrote. */
async function applySecret(kube: Kube, want: V1Secret): Promise<boolean> {
  const have = await kube.readSecret(want.metadata!.namespace!, want.metadata!.name!);
  if (!have) {
    await kube.create(want);
    return true;
  }
  if (
    isDeepStrictEqual(have.data ?? {}, want.data ?? {}) &&
    isDeepStrictEqual(have.metadata?.labels, want.metadata?.labels)
  )
    return false;
  await kube.replace({ ...want, metadata: { ...want.metadata, resourceVersion: have.metadata?.resourceVersion } });
  return true;
}

export interface IdentityOutcome {
  /** Secrets created or updated. */
  written: string[];
  /** Deleted Secrets of clients no longer in the roster. */
  removed: string[];
  /** When the next certificate needs renewing (reconcile again then). */
  renewInMs?: number;
}

/** A certificate is kept while it is from this CA, names the right identity and has more than a third to live. */
function stillGood(
  data: Record<string, string>,
  ca: CertificateAuthority,
  id: WorkloadIdentity,
  lifetimeMs: number,
  now: number,
): boolean {
  const pem = data[SECRET_KEYS.cert];
  if (!pem || !data[SECRET_KEYS.key] || data[SECRET_KEYS.ca] !== ca.cert) return false;
  try {
    const cert = new X509Certificate(pem);
    if (!cert.checkIssued(new X509Certificate(ca.cert))) return false;
    if (!isDeepStrictEqual(peerIdentity({ subjectaltname: cert.subjectAltName ?? '' }), id)) return false;
    return certificateNotAfter(pem).getTime() - now > lifetimeMs / 3;
  } catch {
    return false;
  }
}

/** Revocation list lines: `SERIAL # <client> until <ISO time>`; entries past their certificate's expiry are dropped. */
function revocationList(
  previous: string | undefined,
  add: { serial: string; client: string; notAfter: Date }[],
  now: number,
): string {
  const entries = new Map<string, string>();
  for (const line of (previous ?? '').split('\n')) {
    const m = /^([0-9A-F]+)\s*#.* until (\S+)$/.exec(line.trim());
    if (m && Date.parse(m[2]!) > now) entries.set(m[1]!, line.trim());
  }
  for (const a of add) entries.set(a.serial, `${a.serial} # ${a.client} until ${a.notAfter.toISOString()}`);
  return [...entries.values()]
    .sort()
    .map((l) => `${l}\n`)
    .join('');
}

/**
 * Brings a Federation's identity Secrets to the desired state. Idempotent: with nothing to change it only reads.
 * Returns what it wrote so the caller can record events.
 */
export async function reconcileIdentities(
  kube: Kube,
  f: Federation,
  s: SecuritySettings,
  now = Date.now(),
): Promise<IdentityOutcome> {
  const out: IdentityOutcome = { written: [], removed: [] };
  if (!s.natsAccounts && !s.mtls) return out;
  const ns = f.metadata.namespace!;
  const ref: FederationRef = { namespace: ns, federation: f.metadata.name! };
  const roster = f.spec.clients.map((c) => c.name);
  const lifetimeMs = s.certificateLifetimeMs ?? DEFAULT_LIFETIME_MS;
  const write = async (want: V1Secret) => {
    if (await applySecret(kube, want)) out.written.push(want.metadata!.name!);
  };
  const renewAt = (pem: string) => {
    const at = certificateNotAfter(pem).getTime() - lifetimeMs / 3 - now;
    out.renewInMs = Math.max(1000, Math.min(out.renewInMs ?? Number.POSITIVE_INFINITY, at));
  };

  // NATS seeds: the source of truth, operator-only.
  let seeds: Record<string, string> | undefined;
  if (s.natsAccounts) {
    const have = secretData(await kube.readSecret(ns, identitySecrets.nats(f)));
    seeds = {};
    for (const party of ['operator', 'aggregator', ...roster.map((c) => `client.${c}`)])
      seeds[party] = have[party] ?? createNatsIdentity().seed;
    await write(secret(f, ns, identitySecrets.nats(f), 'nats-identities', seeds));
  }

  let ca: CertificateAuthority | undefined;
  if (s.mtls) {
    const have = secretData(await kube.readSecret(ns, identitySecrets.ca(f)));
    const [cert, key] = [have[SECRET_KEYS.cert], have[SECRET_KEYS.key]];
    const authority = cert && key ? { cert, key } : await createCertificateAuthority(ref);
    await write(
      secret(f, ns, identitySecrets.ca(f), 'ca', {
        [SECRET_KEYS.cert]: authority.cert,
        [SECRET_KEYS.key]: authority.key,
      }),
    );
    ca = authority;
  }

  for (const client of roster) {
    const name = identitySecrets.client(f, client);
    const have = secretData(await kube.readSecret(ns, name));
    const data: Record<string, string> = {};
    if (seeds) data[SECRET_KEYS.natsCreds] = `${seeds[`client.${client}`]}\n`;
    if (ca) {
      const id: WorkloadIdentity = { ...ref, role: 'client', client };
      if (stillGood(have, ca, id, lifetimeMs, now)) {
        data[SECRET_KEYS.cert] = have[SECRET_KEYS.cert]!;
        data[SECRET_KEYS.key] = have[SECRET_KEYS.key]!;
      } else {
        const issued = await issueCertificate(ca, id, { notAfter: new Date(now + lifetimeMs) });
        data[SECRET_KEYS.cert] = issued.cert;
        data[SECRET_KEYS.key] = issued.key;
      }
      data[SECRET_KEYS.ca] = ca.cert;
      renewAt(data[SECRET_KEYS.cert]!);
    }
    await write(secret(f, ns, name, 'client-identity', data, { [LABELS.client]: client }));
  }

  // Clients that left the roster: their Secret goes, and a still-valid certificate is revoked at the llm-host.
  const revoke: { serial: string; client: string; notAfter: Date }[] = [];
  for (const old of await kube.listSecrets(ns, {
    [LABELS.federation]: f.metadata.name!,
    [COMPONENT]: 'client-identity',
  })) {
    const client = old.metadata?.labels?.[LABELS.client] ?? '';
    if (roster.includes(client)) continue;
    const pem = secretData(old)[SECRET_KEYS.cert];
    if (pem) {
      const cert = new X509Certificate(pem);
      revoke.push({ serial: cert.serialNumber.toUpperCase(), client, notAfter: new Date(cert.validTo) });
    }
    await kube.delete(old);
    out.removed.push(old.metadata!.name!);
  }

  if (seeds)
    await write(
      secret(f, ns, identitySecrets.aggregator(f), 'aggregator-identity', {
        [SECRET_KEYS.natsCreds]: `${seeds.aggregator}\n`,
      }),
    );

  if (ca) {
    const name = identitySecrets.llmHost(f);
    const have = secretData(await kube.readSecret(ns, name));
    const id: WorkloadIdentity = { ...ref, role: 'llm-host' };
    const data: Record<string, string> = {};
    if (stillGood(have, ca, id, lifetimeMs, now)) {
      data[SECRET_KEYS.cert] = have[SECRET_KEYS.cert]!;
      data[SECRET_KEYS.key] = have[SECRET_KEYS.key]!;
    } else {
      const svc = llmHostName(f);
      const issued = await issueCertificate(ca, id, {
        notAfter: new Date(now + lifetimeMs),
        dnsNames: [svc, `${svc}.${ns}`, `${svc}.${ns}.svc`, `${svc}.${ns}.svc.cluster.local`],
      });
      data[SECRET_KEYS.cert] = issued.cert;
      data[SECRET_KEYS.key] = issued.key;
    }
    data[SECRET_KEYS.ca] = ca.cert;
    data[SECRET_KEYS.revoked] = revocationList(have[SECRET_KEYS.revoked], revoke, now);
    renewAt(data[SECRET_KEYS.cert]!);
    await write(secret(f, ns, name, 'llm-host-tls', data));
  }

  if (s.natsAccounts && (await syncNatsAccounts(kube, s.natsAccounts))) out.written.push(s.natsAccounts.name);
  return out;
}

/** The identities recorded in a `<fed>-nats-identities` Secret. */
export function federationIdentitiesOf(ref: FederationRef, seeds: Record<string, string>): FederationIdentities {
  const id = (seed: string | undefined): NatsIdentity => natsIdentityFromSeed(seed ?? '');
  return {
    ref,
    operator: id(seeds.operator),
    aggregator: id(seeds.aggregator),
    clients: Object.fromEntries(
      Object.entries(seeds)
        .filter(([k]) => k.startsWith('client.'))
        .map(([k, v]) => [k.slice('client.'.length), id(v)]),
    ),
  };
}

/**
 * Rewrites the NATS accounts config from every federation's identities (read from the API, so an operator that just
 * started never drops an account it has not reconciled yet). `exclude`: a federation being deleted.
 */
export async function syncNatsAccounts(
  kube: Kube,
  target: { namespace: string; name: string },
  exclude?: FederationRef,
): Promise<boolean> {
  const all: FederationIdentities[] = [];
  for (const s of await kube.listSecrets('', { [LABELS.managedBy]: MANAGER, [COMPONENT]: 'nats-identities' })) {
    const ref = { namespace: s.metadata!.namespace!, federation: s.metadata!.labels![LABELS.federation]! };
    if (exclude && ref.namespace === exclude.namespace && ref.federation === exclude.federation) continue;
    if (s.metadata?.deletionTimestamp) continue;
    all.push(federationIdentitiesOf(ref, secretData(s)));
  }
  const want = secret(undefined, target.namespace, target.name, 'nats-accounts', {
    [SECRET_KEYS.accounts]: natsAccountsConfig(all),
  });
  return applySecret(kube, want);
}

/** The operator's own NKey seed for a federation's account (undefined until the identities exist). */
export async function operatorNatsSeed(kube: Kube, f: FederationRef): Promise<string | undefined> {
  return secretData(await kube.readSecret(f.namespace, `${f.federation}-nats-identities`)).operator;
}
