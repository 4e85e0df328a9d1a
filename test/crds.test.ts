import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startKubeApi } from './support/kube-api/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

test('the CRDs are accepted by an API server that checks schemas as apiextensions.k8s.io/v1 does', async () => {
  const api = await startKubeApi({
    crds: ['fednano.io_federations.yaml', 'fednano.io_federationrounds.yaml'].map((f) => join(ROOT, 'crds', f)),
    strictCrdSchemas: true,
  });
  try {
    assert.deepEqual(api.crdWarnings, []);
  } finally {
    await api.close();
  }
});

test('the Kubernetes examples apply cleanly: schema, defaults and CEL rules', async () => {
  const { readFile } = await import('node:fs/promises');
  const { parseAllDocuments } = await import('yaml');
  const api = await startKubeApi({
    crds: ['fednano.io_federations.yaml', 'fednano.io_federationrounds.yaml'].map((f) => join(ROOT, 'crds', f)),
    strictCrdSchemas: true,
  });
  try {
    for (const file of ['federation.yaml', 'round.yaml'])
      for (const doc of parseAllDocuments(await readFile(join(ROOT, 'examples', file), 'utf8'))) {
        const created = api.create<{ spec: Record<string, unknown> }>(doc.toJSON());
        assert.ok(created.spec, file);
      }
    const fed = api.get<{ spec: { llmHost: { replicas: number }; updateEncoding: string } }>(
      'federations.fednano.io',
      'default',
      'vqa',
    );
    assert.equal(fed?.spec.llmHost.replicas, 1, 'defaults applied');
    assert.equal(fed?.spec.updateEncoding, 'float32');
  } finally {
    await api.close();
  }
});
