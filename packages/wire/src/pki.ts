// tsyringe, used inside @peculiar/x509, needs the Reflect metadata API before that module loads.
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import * as x509 from '@peculiar/x509';
import { checkName, type FederationRef } from './names.js';

/**
 * The federation's private PKI for mutual TLS between client-agents and the llm-host. The operator keeps one CA per
 * federation and issues short-lived ECDSA P-256 certificates whose only name that matters is a URI SAN:
 * `spiffe://fednano.io/ns/<namespace>/federation/<federation>/client/<client>` (or `/llm-host`). The llm-host checks
 * the chain (TLS), then the identity: its own federation, a client role, not revoked, and the request's client_id.
 */
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const TRUST_DOMAIN = 'fednano.io';

export type WorkloadIdentity = FederationRef & ({ role: 'client'; client: string } | { role: 'llm-host' });

export interface CertificateAuthority {
  /** PEM certificate (what every party trusts). */
  cert: string;
  /** PEM PKCS#8 private key (stays with the operator). */
  key: string;
}

export interface IssuedCertificate {
  cert: string;
  key: string;
  /** Upper-case hex, as Node's TLS reports a peer's serialNumber: what a revocation list names. */
  serial: string;
  notAfter: Date;
}

export const identityUri = (id: WorkloadIdentity): string =>
  `spiffe://${TRUST_DOMAIN}/ns/${id.namespace}/federation/${id.federation}/${id.role === 'client' ? `client/${id.client}` : 'llm-host'}`;

/** The identity a URI names, or undefined when it is not one of ours (any other URI, another trust domain). */
export function parseIdentityUri(uri: string): WorkloadIdentity | undefined {
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/federation\/([^/]+)\/(client\/([^/]+)|llm-host)$/.exec(uri);
  if (!m || m[1] !== TRUST_DOMAIN) return undefined;
  const [namespace, federation] = [m[2]!, m[3]!];
  return m[5] ? { namespace, federation, role: 'client', client: m[5] } : { namespace, federation, role: 'llm-host' };
}

/** The fednano identity in a peer certificate's subjectAltName, if it has exactly one. */
export function peerIdentity(peer: Pick<PeerCertificate, 'subjectaltname'>): WorkloadIdentity | undefined {
  const found = (peer.subjectaltname ?? '')
    .split(/,\s*/)
    .filter((s) => s.startsWith('URI:'))
    .map((s) => parseIdentityUri(s.slice(4)))
    .filter((id) => id !== undefined);
  return found.length === 1 ? found[0] : undefined;
}

const pem = (der: ArrayBuffer, label: string) => x509.PemConverter.encode(der, label);
const serialHex = () => {
  const b = randomBytes(16);
  b[0]! &= 0x7f; // a positive INTEGER without a leading zero byte
  b[0]! |= 0x10;
  return b.toString('hex').toUpperCase();
};

async function exportKey(key: CryptoKey): Promise<string> {
  return pem(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

async function importKey(pemKey: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pemKey);
  return webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, false, ['sign']);
}

export interface ValidityOptions {
  /** Start of validity (default now, back-dated a minute for clock skew). */
  notBefore?: Date;
  notAfter?: Date;
}

/** A new CA for one federation (default validity: one year). */
export async function createCertificateAuthority(
  f: FederationRef,
  o: ValidityOptions = {},
): Promise<CertificateAuthority> {
  checkName('namespace', f.namespace);
  checkName('federation', f.federation);
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const notBefore = o.notBefore ?? new Date(Date.now() - 60_000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialHex(),
    name: `CN=fednano ${f.namespace}/${f.federation} CA`,
    notBefore,
    notAfter: o.notAfter ?? new Date(notBefore.getTime() + 365 * 86_400_000),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: await exportKey(keys.privateKey) };
}

/**
 * A leaf certificate for a workload (default validity: 24 hours; the operator renews well before). Clients get the
 * clientAuth usage only; the llm-host gets serverAuth and its Service's DNS names.
 */
export async function issueCertificate(
  ca: CertificateAuthority,
  id: WorkloadIdentity,
  o: ValidityOptions & { dnsNames?: string[] } = {},
): Promise<IssuedCertificate> {
  checkName('namespace', id.namespace);
  checkName('federation', id.federation);
  if (id.role === 'client') checkName('client', id.client);
  const caCert = new x509.X509Certificate(ca.cert);
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const notBefore = o.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = o.notAfter ?? new Date(notBefore.getTime() + 24 * 3_600_000);
  const serial = serialHex();
  const names = [
    { type: 'url' as const, value: identityUri(id) },
    ...(o.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: `CN=${id.role === 'client' ? id.client : `${id.federation}-llm-host`}`,
    issuer: caCert.subject,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: await importKey(ca.key),
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(
        [id.role === 'client' ? x509.ExtendedKeyUsage.clientAuth : x509.ExtendedKeyUsage.serverAuth],
        false,
      ),
      new x509.SubjectAlternativeNameExtension(names, false),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
    ],
  });
  return { cert: cert.toString('pem'), key: await exportKey(keys.privateKey), serial, notAfter };
}

/** When a certificate (PEM) stops being valid: what renewal compares against. */
export const certificateNotAfter = (certPem: string): Date => new x509.X509Certificate(certPem).notAfter;
