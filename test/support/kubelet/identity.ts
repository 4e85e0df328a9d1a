import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CertificatesV1Api, KubeConfig } from '@kubernetes/client-node';
import { isConflict } from './errors.js';

/**
 * A node's own identity, `system:node:<name>` in group `system:nodes`, as a kubelet gets it by TLS bootstrap: a key
 * and a CertificateSigningRequest for the `kubernetes.io/kube-apiserver-client-kubelet` signer, approved with the
 * bootstrap (admin) client and signed by kube-controller-manager's csrsigning controller
 * (--cluster-signing-cert-file). With it the Node authorizer and the NodeRestriction admission plugin apply: the
 * node may write only its own Node, Lease and pods' status, read only the Secrets/ConfigMaps its pods use, and
 * request tokens only for its pods' ServiceAccounts, bound to those pods.
 */
const exec = promisify(execFile);
const SIGNER = 'kubernetes.io/kube-apiserver-client-kubelet';

export async function nodeKubeConfig(admin: KubeConfig, node: string, timeoutMs = 60_000): Promise<KubeConfig> {
  const dir = await mkdtemp(join(tmpdir(), 'fednano-node-identity-'));
  try {
    const key = join(dir, 'key.pem');
    const csr = join(dir, 'csr.pem');
    await exec('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
    await exec('openssl', ['req', '-new', '-key', key, '-out', csr, '-subj', `/O=system:nodes/CN=system:node:${node}`]);
    const [keyPem, csrPem] = await Promise.all([readFile(key, 'utf8'), readFile(csr)]);
    const certs = admin.makeApiClient(CertificatesV1Api);
    const name = `fednano-kubelet-${node}-${Date.now().toString(36)}`;
    await certs.createCertificateSigningRequest({
      body: {
        metadata: { name },
        spec: {
          request: csrPem.toString('base64'),
          signerName: SIGNER,
          usages: ['digital signature', 'client auth'],
          expirationSeconds: 24 * 3600,
        },
      },
    });
    for (let attempt = 0; ; attempt++) {
      const current = await certs.readCertificateSigningRequest({ name });
      try {
        await certs.replaceCertificateSigningRequestApproval({
          name,
          body: {
            ...current,
            status: {
              ...current.status,
              conditions: [
                {
                  type: 'Approved',
                  status: 'True',
                  reason: 'FedNanoKubelet',
                  message: `the project's kubelet bootstraps node ${node}`,
                  lastUpdateTime: new Date(),
                },
              ],
            },
          },
        });
        break;
      } catch (e) {
        if (!isConflict(e) || attempt > 5) throw e;
      }
    }
    const deadline = Date.now() + timeoutMs;
    let cert: string | undefined;
    while (!cert) {
      const s = await certs.readCertificateSigningRequest({ name });
      if (s.status?.certificate) cert = s.status.certificate;
      else if (Date.now() > deadline)
        throw new Error(
          `the CSR for node ${node} was not signed in ${timeoutMs / 1000} s (is kube-controller-manager running with --cluster-signing-cert-file?): ${JSON.stringify(s.status)}`,
        );
      else await new Promise((r) => setTimeout(r, 200));
    }
    const cluster = admin.getCurrentCluster()!;
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ ...cluster, name: 'cluster' }],
      users: [{ name: `system:node:${node}`, certData: cert, keyData: Buffer.from(keyPem).toString('base64') }],
      contexts: [{ name: node, cluster: 'cluster', user: `system:node:${node}` }],
      currentContext: node,
    });
    return kc;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
