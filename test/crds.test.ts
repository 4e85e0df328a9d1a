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
