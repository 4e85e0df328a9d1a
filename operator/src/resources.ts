import { createHash } from 'node:crypto';
import type {
  V1Container,
  V1Deployment,
  V1OwnerReference,
  V1Pod,
  V1SecurityContext,
  V1Service,
} from '@kubernetes/client-node';
import { identitySecrets, SECRET_KEYS, type SecuritySettings } from './identities.js';
import { API_VERSION, type Federation, type FederationRound, LABELS, MANAGER, type RosterClient } from './types.js';

/**
 * What the operator wants to exist, as pure functions of the custom resources (no API calls): easy to test, and
 * the reconcilers only compare and apply.
 */
export interface Images {
  llmHost: string;
  aggregator: string;
  clientAgent: string;
}

export interface OperatorSettings {
  images: Images;
  /** NATS URL the services connect to. */
  natsUrl: string;
  /** Operator-issued NATS identities and mutual TLS (identities.ts); off when absent. */
  security?: SecuritySettings;
}

/** Where a pod's identity Secret is mounted. */
const IDENTITY_DIR = '/var/run/secrets/fednano';
const identityFile = (key: string) => `${IDENTITY_DIR}/${key}`;
const identityVolume = (secretName: string) => ({
  name: 'identity',
  secret: { secretName, defaultMode: 0o400 },
});
const identityMount = { name: 'identity', mountPath: IDENTITY_DIR, readOnly: true };

export const LLM_HOST_GRPC_PORT = 50051;
/** Where the aggregator finds the held-out shard of spec.evaluation. */
export const EVALUATION_DIR = '/evaluation';
export const OPS_PORT = 9090;
/** Annotation holding a hash of the desired spec: an object is updated only when it changes. */
export const SPEC_HASH = 'fednano.io/spec-hash';

export const llmHostName = (f: Federation) => `${f.metadata.name}-llm-host`;
export const aggregatorName = (f: Federation) => `${f.metadata.name}-aggregator`;
export const llmHostAddress = (f: Federation) =>
  `${llmHostName(f)}.${f.metadata.namespace}.svc.cluster.local:${LLM_HOST_GRPC_PORT}`;

export function ownerRef(o: Federation | FederationRound): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: o.kind,
    name: o.metadata.name!,
    uid: o.metadata.uid!,
    controller: true,
    blockOwnerDeletion: true,
  };
}

export function specHash(spec: unknown): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 16);
}

function labels(f: Federation, component: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    [LABELS.name]: `fednano-${component}`,
    [LABELS.managedBy]: MANAGER,
    [LABELS.federation]: f.metadata.name!,
    ...extra,
  };
}

/** Non-root, no privilege escalation, no capabilities, read-only root, RuntimeDefault seccomp. */
export const RESTRICTED: V1SecurityContext = {
  runAsNonRoot: true,
  runAsUser: 65532,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

const probes = (): Pick<V1Container, 'readinessProbe' | 'livenessProbe'> => ({
  readinessProbe: { httpGet: { path: '/readyz', port: OPS_PORT }, periodSeconds: 5 },
  livenessProbe: { httpGet: { path: '/healthz', port: OPS_PORT }, periodSeconds: 10, failureThreshold: 6 },
});

function withHash<T extends V1Deployment | V1Service>(o: T): T {
  o.metadata!.annotations = { ...o.metadata!.annotations, [SPEC_HASH]: specHash(o.spec) };
  return o;
}

export function llmHostDeployment(f: Federation, s: OperatorSettings): V1Deployment {
  const h = f.spec.llmHost ?? {};
  const gpus = h.gpus ?? 1;
  const l = labels(f, 'llm-host');
  const mtls = s.security?.mtls === true;
  return withHash<V1Deployment>({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: llmHostName(f), namespace: f.metadata.namespace, labels: l, ownerReferences: [ownerRef(f)] },
    spec: {
      replicas: h.replicas ?? 1,
      selector: { matchLabels: { [LABELS.name]: l[LABELS.name]!, [LABELS.federation]: f.metadata.name! } },
      template: {
        metadata: { labels: l },
        spec: {
          nodeSelector: h.nodeSelector,
          tolerations: h.tolerations as never,
          securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
          volumes: mtls ? [identityVolume(identitySecrets.llmHost(f))] : undefined,
          containers: [
            {
              name: 'llm-host',
              image: h.image ?? s.images.llmHost,
              args: [
                '--model',
                f.spec.model.path,
                '--port',
                String(LLM_HOST_GRPC_PORT),
                '--ops-port',
                String(OPS_PORT),
                '--execution-provider',
                gpus > 0 ? 'cuda' : 'cpu',
                ...(mtls
                  ? [
                      '--tls-cert',
                      identityFile(SECRET_KEYS.cert),
                      '--tls-key',
                      identityFile(SECRET_KEYS.key),
                      '--tls-client-ca',
                      identityFile(SECRET_KEYS.ca),
                      '--federation',
                      `${f.metadata.namespace}/${f.metadata.name}`,
                      '--revoked-serials',
                      identityFile(SECRET_KEYS.revoked),
                    ]
                  : []),
              ],
              volumeMounts: mtls ? [identityMount] : undefined,
              ports: [
                { name: 'grpc', containerPort: LLM_HOST_GRPC_PORT },
                { name: 'ops', containerPort: OPS_PORT },
              ],
              resources: {
                ...(h.resources as object),
                limits: {
                  ...((h.resources as { limits?: Record<string, string> } | undefined)?.limits ?? {}),
                  ...(gpus > 0 ? { 'nvidia.com/gpu': String(gpus) } : {}),
                },
              },
              securityContext: RESTRICTED,
              ...probes(),
            },
          ],
        },
      },
    },
  });
}

export function llmHostService(f: Federation): V1Service {
  const l = labels(f, 'llm-host');
  return withHash<V1Service>({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: llmHostName(f), namespace: f.metadata.namespace, labels: l, ownerReferences: [ownerRef(f)] },
    spec: {
      selector: { [LABELS.name]: l[LABELS.name]!, [LABELS.federation]: f.metadata.name! },
      ports: [
        { name: 'grpc', port: LLM_HOST_GRPC_PORT, targetPort: LLM_HOST_GRPC_PORT as never },
        { name: 'ops', port: OPS_PORT, targetPort: OPS_PORT as never },
      ],
    },
  });
}

export function aggregatorDeployment(f: Federation, s: OperatorSettings): V1Deployment {
  const a = f.spec.aggregator ?? {};
  const l = labels(f, 'aggregator');
  const nats = s.security?.natsAccounts !== undefined;
  const evaluation = f.spec.evaluation;
  const volumes = [
    ...(nats ? [identityVolume(identitySecrets.aggregator(f))] : []),
    ...(evaluation ? [{ name: 'evaluation', ...evaluation.dataVolume } as never] : []),
  ];
  const mounts = [
    ...(nats ? [identityMount] : []),
    ...(evaluation ? [{ name: 'evaluation', mountPath: EVALUATION_DIR, readOnly: true }] : []),
  ];
  return withHash<V1Deployment>({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: aggregatorName(f), namespace: f.metadata.namespace, labels: l, ownerReferences: [ownerRef(f)] },
    spec: {
      // One writer per federation; Recreate so a new version never overlaps the old one.
      replicas: 1,
      strategy: { type: 'Recreate' },
      selector: { matchLabels: { [LABELS.name]: l[LABELS.name]!, [LABELS.federation]: f.metadata.name! } },
      template: {
        metadata: { labels: l },
        spec: {
          securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
          volumes: volumes.length ? volumes : undefined,
          containers: [
            {
              name: 'aggregator',
              image: a.image ?? s.images.aggregator,
              args: [
                '--nats',
                s.natsUrl,
                '--namespace',
                f.metadata.namespace!,
                '--federation',
                f.metadata.name!,
                '--ops-port',
                String(OPS_PORT),
                '--model',
                f.spec.model.path,
                '--adapter-rank',
                String(f.spec.adapter.rank),
                '--adapter-alpha',
                String(f.spec.adapter.alpha),
                ...(nats ? ['--nats-creds', identityFile(SECRET_KEYS.natsCreds)] : []),
                // Scored with the frozen model in the aggregator's own process (docs/operator.md says why).
                ...(evaluation ? ['--evaluation-data', EVALUATION_DIR] : []),
              ],
              volumeMounts: mounts.length ? mounts : undefined,
              ports: [{ name: 'ops', containerPort: OPS_PORT }],
              resources: a.resources as never,
              securityContext: RESTRICTED,
              ...probes(),
            },
          ],
        },
      },
    },
  });
}

/**
 * A user-provided Secret with a client's NATS credentials (key `nats.creds`), mounted when it exists and the operator
 * issues no identities itself.
 */
export const clientCredentialsSecret = (f: Federation, client: string) => `${f.metadata.name}-${client}-nats`;

/** What a client-agent pod mounts from its identity Secret. */
export interface ClientIdentity {
  secret: string;
  /** The Secret has `nats.creds`. */
  nats: boolean;
  /** The Secret has `tls.crt`, `tls.key` and `ca.crt` for mutual TLS with the llm-host. */
  tls: boolean;
}

/** The identity a client's pod gets under these settings (undefined: look for a user-provided Secret). */
export function issuedClientIdentity(f: Federation, client: string, s: OperatorSettings): ClientIdentity | undefined {
  const nats = s.security?.natsAccounts !== undefined;
  const tls = s.security?.mtls === true;
  return nats || tls ? { secret: identitySecrets.client(f, client), nats, tls } : undefined;
}
export const clientPodName = (r: FederationRound, client: string, attempt: number) =>
  `${r.metadata.name}-${client}-${attempt}`.slice(0, 253);

/** One client's round: a run-to-completion Pod on the client's edge node with its data volume at /data. */
export function clientAgentPod(
  f: Federation,
  r: FederationRound,
  client: RosterClient,
  attempt: number,
  s: OperatorSettings,
  identity?: ClientIdentity,
): V1Pod {
  const l = labels(f, 'client-agent', { [LABELS.round]: r.metadata.name!, [LABELS.client]: client.name });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: clientPodName(r, client.name, attempt),
      namespace: r.metadata.namespace,
      labels: l,
      annotations: { 'fednano.io/attempt': String(attempt) },
      ownerReferences: [ownerRef(r)],
    },
    spec: {
      restartPolicy: 'Never',
      nodeSelector: client.nodeSelector,
      securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
      volumes: [
        { name: 'data', ...(client.dataVolume ?? { emptyDir: {} }) } as never,
        { name: 'tmp', emptyDir: {} },
        ...(identity ? [identityVolume(identity.secret)] : []),
      ],
      containers: [
        {
          name: 'client-agent',
          image: client.image ?? s.images.clientAgent,
          args: [
            '--nats',
            s.natsUrl,
            '--namespace',
            r.metadata.namespace!,
            '--federation',
            f.metadata.name!,
            '--round',
            String(r.spec.round),
            '--client',
            client.name,
            '--llm-host',
            llmHostAddress(f),
            '--model',
            f.spec.model.path,
            '--data',
            '/data',
            ...(identity?.nats ? ['--nats-creds', identityFile(SECRET_KEYS.natsCreds)] : []),
            ...(identity?.tls
              ? [
                  '--tls-ca',
                  identityFile(SECRET_KEYS.ca),
                  '--tls-cert',
                  identityFile(SECRET_KEYS.cert),
                  '--tls-key',
                  identityFile(SECRET_KEYS.key),
                  // The certificate names the Service; the address may be rewritten (proxies, tests).
                  '--tls-server-name',
                  llmHostAddress(f).replace(/:\d+$/, ''),
                ]
              : []),
          ],
          volumeMounts: [
            { name: 'data', mountPath: '/data', readOnly: true },
            { name: 'tmp', mountPath: '/tmp' },
            ...(identity ? [identityMount] : []),
          ],
          resources: { requests: { cpu: '500m', memory: '512Mi' }, limits: { memory: '2Gi' } },
          securityContext: RESTRICTED,
        },
      ],
    },
  };
}
