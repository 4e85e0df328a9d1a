import { join } from 'node:path';
import { writeShard } from '@fednano/data';
import { SERVICE_ENTRIES } from '@fednano/local-cluster';
import { loadModelFolder } from '@fednano/model';
import { loadConfig, planFederation } from '@fednano/simulation';
import type { KubeConfig } from '@kubernetes/client-node';
import { ProcessKubelet, type ProcessKubeletOptions } from './process-kubelet.js';

/**
 * What the operator e2e suites share: the client shards of the small fixture on disk, a process kubelet with a GPU
 * node and one edge node per client, a Federation manifest for those clients, and polling with a useful failure.
 */
const ROOT = new URL('../../', import.meta.url).pathname;

/**
 * Writes each client's data shard of test/fixtures/e2e-small.yaml under `<dir>/<client>`, and its test split, the
 * federation's held-out set, under `<dir>/held-out`.
 */
export async function writeFixtureShards(dir: string): Promise<void> {
  const config = await loadConfig(join(ROOT, 'test/fixtures/e2e-small.yaml'));
  const folder = await loadModelFolder(join(ROOT, config.spec.model.path));
  const plan = await planFederation(config, folder.manifest.recipe.seed);
  for (const c of plan.clients) await writeShard(join(dir, c.id), plan.sets, c.questions);
  await writeShard(join(dir, HELD_OUT), plan.sets, plan.test);
}

/** The held-out shard's folder under the data folder. */
export const HELD_OUT = 'held-out';

/** A process kubelet running the three service images and the operator's, on `gpu-0` and an `edge-<client>` node per client. */
export function edgeKubelet(
  kc: KubeConfig,
  clients: readonly string[],
  extra: Partial<ProcessKubeletOptions> = {},
): ProcessKubelet {
  return new ProcessKubelet(kc, {
    nodes: [
      { name: 'gpu-0', labels: { 'nvidia.com/gpu.present': 'true' } },
      ...clients.map((c) => ({ name: `edge-${c}`, labels: {} })),
    ],
    images: {
      'fednano/llm-host': SERVICE_ENTRIES.llmHost,
      'fednano/aggregator': SERVICE_ENTRIES.aggregator,
      'fednano/client-agent': SERVICE_ENTRIES.clientAgent,
      'fednano/operator': join(ROOT, 'operator/bin/operator.mjs'),
    },
    ...extra,
  });
}

/** A Federation whose clients sit on their edge nodes with their shard folders as host paths (CPU llm-host). */
export function federationManifest(o: {
  name: string;
  namespace: string;
  clients: readonly string[];
  dataDir: string;
  /** Score each round on the held-out shard under dataDir (spec.evaluation). */
  evaluation?: boolean;
  /** YAML flow mappings of the spec fields. */
  strategy: string;
  training: string;
  participation: string;
}): string {
  const roster = o.clients
    .map(
      (c) =>
        `    - name: ${c}\n      nodeSelector: { kubernetes.io/hostname: edge-${c} }\n      dataVolume: { hostPath: { path: ${join(o.dataDir, c)} } }`,
    )
    .join('\n');
  return `
apiVersion: fednano.io/v1alpha1
kind: Federation
metadata: { name: ${o.name}, namespace: ${o.namespace} }
spec:
  model: { path: models/reference }
  llmHost:
    gpus: 0
    nodeSelector: { nvidia.com/gpu.present: "true" }
  clients:
${roster}
${o.evaluation ? `  evaluation: { dataVolume: { hostPath: { path: ${join(o.dataDir, HELD_OUT)} } } }\n` : ''}  adapter: { rank: 8, alpha: 16 }
  strategy: ${o.strategy}
  training: ${o.training}
  participation: ${o.participation}
`;
}

/** Polls `get` until `ok`; on timeout, fails with the last value or error and `context()` (cluster state, logs). */
export async function waitFor<T>(
  what: string,
  get: () => Promise<T>,
  ok: (v: T) => boolean,
  timeoutMs: number,
  context: () => string = () => '',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let error = '';
  while (Date.now() < deadline) {
    try {
      last = await get();
      if (ok(last)) return last;
    } catch (e) {
      error = (e as Error).message; // not there yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `timed out waiting for ${what}; last seen: ${JSON.stringify(last)?.slice(0, 1500)}${error ? ` (last error: ${error})` : ''}\n${context()}`,
  );
}
