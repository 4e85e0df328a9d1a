import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  createCertificateAuthority,
  createFederationIdentities,
  type FederationRef,
  issueCertificate,
  natsAccountsConfig,
} from '@fednano/wire';

/**
 * The identities the operator issues in a cluster, issued here for a federation on this machine: a NATS account
 * with an NKey user per party, and a CA with certificates for the llm-host (named `localhost`) and every client. They
 * are written as files under one folder, as the Secrets would be mounted.
 */
export interface LocalIdentities {
  /** The nats-server `accounts` block. */
  natsAccounts: string;
  ca: string;
  llmHost: { cert: string; key: string };
  aggregator: { nats: string };
  /** For whoever opens rounds and evaluates (`fednano run` itself): the operator's NATS user, an evaluator certificate. */
  operator: { nats: string; cert: string; key: string };
  client(name: string): { nats: string; cert: string; key: string };
  /** The name the llm-host's certificate carries. */
  serverName: string;
}

export const LOCAL_SERVER_NAME = 'localhost';

export async function issueLocalIdentities(
  f: FederationRef,
  clients: readonly string[],
  dir: string,
): Promise<LocalIdentities> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = async (name: string, content: string) => {
    const path = join(dir, name);
    await writeFile(path, content, { mode: 0o600 });
    return path;
  };
  const nats = createFederationIdentities(f, [...clients]);
  const ca = await createCertificateAuthority(f);
  const certFiles = async (name: string, issued: { cert: string; key: string }) => ({
    cert: await file(`${name}.crt`, issued.cert),
    key: await file(`${name}.key`, issued.key),
  });
  const llmHost = await certFiles(
    'llm-host',
    await issueCertificate(ca, { ...f, role: 'llm-host' }, { dnsNames: [LOCAL_SERVER_NAME] }),
  );
  const clientFiles = new Map<string, { nats: string; cert: string; key: string }>();
  for (const c of clients)
    clientFiles.set(c, {
      nats: await file(`${c}.nk`, `${nats.clients[c]!.seed}\n`),
      ...(await certFiles(c, await issueCertificate(ca, { ...f, role: 'client', client: c }))),
    });
  const evaluator = await certFiles(
    'evaluator',
    await issueCertificate(ca, { ...f, role: 'client', client: 'evaluator' }),
  );
  return {
    natsAccounts: natsAccountsConfig([nats]),
    ca: await file('ca.crt', ca.cert),
    llmHost,
    aggregator: { nats: await file('aggregator.nk', `${nats.aggregator.seed}\n`) },
    operator: { nats: await file('operator.nk', `${nats.operator.seed}\n`), ...evaluator },
    client(name: string) {
      const found = clientFiles.get(name);
      if (!found) throw new Error(`no identity was issued for client '${name}'`);
      return found;
    },
    serverName: LOCAL_SERVER_NAME,
  };
}
