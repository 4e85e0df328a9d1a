import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { rng } from '@fednano/data';
import {
  type Federation,
  type FederationRound,
  FINALIZER,
  reconcileFederation,
  reconcileIdentities,
  reconcileRound,
} from '@fednano/operator';
import { KubeConfig, KubernetesObjectApi } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { FakeKube, FakeRecorder, FakeStore } from '../operator/src/testing.js';
import { type KubeApi, startKubeApi } from './support/kube-api/index.js';

/**
 * Fuzz of the custom-resource path: mutated Federations and FederationRounds go to the emulated API server (the CRD
 * schemas, CEL rules and request size limit) through the real client-node; what it refuses must be a 4xx Status
 * with a message, and what it accepts must reconcile without the operator throwing (semantic problems become
 * conditions, not crashes).
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CRDS = [join(ROOT, 'crds/fednano.io_federations.yaml'), join(ROOT, 'crds/fednano.io_federationrounds.yaml')];
const BASE_FEDERATION = parse(readFileSync(join(ROOT, 'examples/federation.yaml'), 'utf8')) as Federation;
const BASE_ROUND: FederationRound = {
  apiVersion: 'fednano.io/v1alpha1',
  kind: 'FederationRound',
  metadata: { name: 'r', namespace: 'default' },
  spec: { federationRef: { name: 'vqa' }, round: 1, deadlineSeconds: 600 },
};
const settings = { natsUrl: 'nats://nats:4222', images: { llmHost: 'l', aggregator: 'a', clientAgent: 'c' } };

let api: KubeApi;
let objects: KubernetesObjectApi;

before(async () => {
  api = await startKubeApi({ crds: CRDS });
  const kc = new KubeConfig();
  kc.loadFromString(api.kubeconfig());
  objects = KubernetesObjectApi.makeApiClient(kc);
});
after(async () => {
  await api?.close();
});

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every path to a value inside an object (object keys and array indexes). */
function paths(v: Json, at: (string | number)[] = []): (string | number)[][] {
  if (v === null || typeof v !== 'object') return [at];
  const kids = Array.isArray(v)
    ? v.map((x, i) => paths(x, [...at, i]))
    : Object.entries(v).map(([k, x]) => paths(x, [...at, k]));
  return [at, ...kids.flat()];
}

function mutate(o: Json, random: () => number): Json {
  const copy = structuredClone(o) as { [k: string]: Json };
  const all = paths(copy).filter((p) => p.length > 1 && p[0] === 'spec');
  const pick = <T>(xs: T[]) => xs[Math.floor(random() * xs.length)]!;
  const values: Json[] = [
    null,
    -1,
    0,
    1e308,
    0.5,
    '',
    'x'.repeat(5000),
    'Ω-名',
    true,
    [],
    {},
    [1, 'a'],
    { unknown: 1 },
    'UPPER_case',
    '../../etc/passwd',
    Number.MAX_SAFE_INTEGER,
  ];
  const edits = 1 + Math.floor(random() * 3);
  for (let e = 0; e < edits; e++) {
    const path = pick(all);
    let parent = copy as Json;
    for (const k of path.slice(0, -1)) parent = (parent as Record<string | number, Json>)?.[k] ?? null;
    if (parent === null || typeof parent !== 'object') continue;
    const last = path.at(-1)!;
    const r = random();
    if (r < 0.3) delete (parent as Record<string | number, Json>)[last];
    else if (r < 0.9) (parent as Record<string | number, Json>)[last] = pick(values);
    else if (Array.isArray(parent)) parent.push(structuredClone(parent[0] ?? null));
    else (parent as Record<string, Json>)[`extra${e}`] = pick(values);
  }
  return copy;
}

let lastRefusal = '';

/** create -> the API's verdict: 'accepted', or the HTTP status of a refusal (with its message checked). */
async function submit(o: Json): Promise<'accepted' | number> {
  try {
    await objects.create(o as never);
    return 'accepted';
  } catch (e) {
    const code = (e as { code?: number }).code;
    const body = String((e as { body?: unknown }).body ?? '');
    lastRefusal = body;
    assert.ok(code && code >= 400 && code < 500, `refusal must be a 4xx, got ${code}: ${body.slice(0, 300)}`);
    assert.match(body, /"kind":"Status"[\s\S]*"message":"[^"]+"/, 'a refusal says why');
    return code;
  }
}

test('600 mutated Federations and FederationRounds: a 4xx with a reason, or accepted and reconciled without a crash', async () => {
  const random = rng(11);
  const verdicts: Record<string, number> = {};
  for (let i = 0; i < 600; i++) {
    const isRound = i % 3 === 2;
    const name = `fuzz-${i}`;
    const o = mutate((isRound ? BASE_ROUND : BASE_FEDERATION) as unknown as Json, random) as Record<string, Json>;
    o.metadata = { name, namespace: 'default' };
    const verdict = await submit(o);
    verdicts[String(verdict)] = (verdicts[String(verdict)] ?? 0) + 1;
    if (verdict !== 'accepted') continue;
    const stored = api.get<Record<string, Json>>(
      isRound ? 'federationrounds.fednano.io' : 'federations.fednano.io',
      'default',
      name,
    )!;
    // The operator's reconcilers on what the API accepted (as stored: defaults applied, unknown fields pruned).
    const kube = new FakeKube();
    const store = new FakeStore();
    const deps = { kube, store, recorder: new FakeRecorder(), settings };
    const fed = kube.put({
      ...structuredClone(BASE_FEDERATION),
      metadata: { ...BASE_FEDERATION.metadata, finalizers: [FINALIZER] },
    });
    if (isRound) {
      store.initial({ namespace: 'default', federation: fed.metadata.name! });
      kube.put({
        ...(stored as unknown as FederationRound),
        metadata: { name, namespace: 'default', finalizers: [FINALIZER] },
      });
      await reconcileRound(deps, 'default', name);
    } else {
      const f = kube.put({
        ...(stored as unknown as Federation),
        metadata: { name, namespace: 'default', finalizers: [FINALIZER] },
      });
      await reconcileFederation(deps, 'default', name);
      // Identities for accepted rosters (NATS users only: certificates are exercised elsewhere and cost more).
      await reconcileIdentities(kube, f, { natsAccounts: { namespace: 'default', name: 'accounts' } });
    }
  }
  // Both kinds of outcome occurred (the mutations are neither all harmless nor all fatal).
  assert.ok((verdicts.accepted ?? 0) > 50, JSON.stringify(verdicts));
  assert.ok((verdicts['422'] ?? 0) > 50, JSON.stringify(verdicts));
  process.stderr.write(`CR fuzz verdicts: ${JSON.stringify(verdicts)}\n`);
});

test('size limits: a roster over maxItems and a body over the request limit are refused before any reconcile', async () => {
  const big = structuredClone(BASE_FEDERATION) as Federation;
  big.metadata = { name: 'too-many', namespace: 'default' };
  big.spec.clients = Array.from({ length: 10_001 }, (_, i) => ({ name: `c${i}` }));
  assert.equal(await submit(big as unknown as Json), 422);
  assert.match(lastRefusal, /spec\.clients.*must have at most 10000 items/);
  const huge = structuredClone(BASE_FEDERATION) as Federation;
  huge.metadata = { name: 'huge', namespace: 'default', annotations: { blob: 'x'.repeat(4 * 1024 * 1024) } };
  assert.equal(await submit(huge as unknown as Json), 413);
});
