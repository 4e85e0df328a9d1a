import { readFileSync, statSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';
import { type FederationRef, grpc, peerIdentity } from '@fednano/wire';

/**
 * Who may call the llm-host. TLS has already checked the client certificate's chain against the federation's CA;
 * this checks what the chain cannot: the certificate names a client of *this* federation, is not revoked, has not
 * expired, and is the client the request claims to be.
 */
export class AuthorizationError extends Error {
  override name = 'AuthorizationError';
  constructor(
    readonly code: grpc.status,
    /** Short label for metrics. */
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/** Revoked certificate serials (upper-case hex, one per line, '#' comments), re-read when the file changes. */
export class RevocationList {
  private serials = new Set<string>();
  private mtimeMs = -1;
  private checkedAt = 0;

  constructor(
    private readonly file: string | undefined,
    private readonly recheckMs = 1000,
  ) {
    this.reload();
  }

  private reload(): void {
    if (!this.file) return;
    const mtimeMs = statSync(this.file).mtimeMs;
    if (mtimeMs === this.mtimeMs) return;
    this.serials = new Set(
      readFileSync(this.file, 'utf8')
        .split('\n')
        .map((l) => l.replace(/#.*/, '').trim().toUpperCase().replace(/^0+/, ''))
        .filter(Boolean),
    );
    this.mtimeMs = mtimeMs;
  }

  has(serial: string): boolean {
    if (this.file && Date.now() - this.checkedAt >= this.recheckMs) {
      this.checkedAt = Date.now();
      try {
        this.reload();
      } catch {
        // A file being replaced (Secret/ConfigMap update) may be briefly absent: keep the last list.
      }
    }
    return this.serials.has(serial.toUpperCase().replace(/^0+/, ''));
  }

  get size(): number {
    return this.serials.size;
  }
}

export interface CallerPolicy {
  /** The federation whose clients may call; absent: any certificate from the CA (chain, revocation and expiry only). */
  federation?: FederationRef;
  revoked: RevocationList;
  now?: () => number;
}

/** The authenticated client's name, or an AuthorizationError with the status to answer. */
export function authorizeCaller(
  authContext: { transportSecurityType?: string; sslPeerCertificate?: PeerCertificate } | null,
  claimedClient: string | undefined,
  policy: CallerPolicy,
): string {
  const peer = authContext?.sslPeerCertificate;
  if (authContext?.transportSecurityType !== 'ssl' || !peer || !peer.raw)
    throw new AuthorizationError(grpc.status.UNAUTHENTICATED, 'no-certificate', 'a client certificate is required');
  const id = peerIdentity(peer);
  const whose = id?.role === 'client' ? `of client '${id.client}' ` : '';
  if (policy.revoked.has(peer.serialNumber))
    throw new AuthorizationError(
      grpc.status.PERMISSION_DENIED,
      'revoked',
      `the certificate ${whose}(serial ${peer.serialNumber}) is revoked`,
    );
  // TLS refuses expired certificates at the handshake; a long-lived connection can outlive its certificate.
  if (Date.parse(peer.valid_to) < (policy.now?.() ?? Date.now()))
    throw new AuthorizationError(
      grpc.status.UNAUTHENTICATED,
      'expired',
      `the certificate ${whose}(serial ${peer.serialNumber}) expired at ${new Date(peer.valid_to).toISOString()}`,
    );
  const f = policy.federation;
  // Without a federation to check, the CA's signature (TLS) is the whole policy.
  if (!f) return id?.role === 'client' ? id.client : '';
  if (!id)
    throw new AuthorizationError(
      grpc.status.PERMISSION_DENIED,
      'no-identity',
      'the client certificate names no fednano identity (a URI SAN spiffe://fednano.io/ns/<ns>/federation/<fed>/client/<client>)',
    );
  if (id.namespace !== f.namespace || id.federation !== f.federation)
    throw new AuthorizationError(
      grpc.status.PERMISSION_DENIED,
      'other-federation',
      `the certificate is for federation ${id.namespace}/${id.federation}; this llm-host serves ${f.namespace}/${f.federation}`,
    );
  if (id.role !== 'client')
    throw new AuthorizationError(
      grpc.status.PERMISSION_DENIED,
      'not-a-client',
      `the certificate is a ${id.role} identity; only clients may call the llm-host`,
    );
  if (claimedClient && claimedClient !== id.client)
    throw new AuthorizationError(
      grpc.status.PERMISSION_DENIED,
      'client-mismatch',
      `the request says client_id '${claimedClient}' but the certificate is client '${id.client}'`,
    );
  return id.client;
}
