import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runFederation } from '@fednano/local-cluster';
import { checkConfig, loadConfig, simulate } from '@fednano/simulation';
import type { RoundDocument } from '@fednano/wire';
import { parse } from 'yaml';
import { startKubeApi } from './support/kube-api/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

test('the Federation CRD refuses a client adapterRank above adapter.rank (CEL) and accepts one below', async () => {
  const api = await startKubeApi({
    crds: ['fednano.io_federations.yaml', 'fednano.io_federationrounds.yaml'].map((f) => join(ROOT, 'crds', f)),
    strictCrdSchemas: true,
  });
  try {
    const fed = parse(await readFile(join(ROOT, 'examples', 'federation.yaml'), 'utf8'));
    const withRank = (name: string, adapterRank: number) => ({
      ...fed,
      metadata: { ...fed.metadata, name },
      spec: {
        ...fed.spec,
        adapter: { ...fed.spec.adapter, rankMerge: 'zero-pad' },
        clients: fed.spec.clients.map((c: object, i: number) => (i === 0 ? { ...c, adapterRank } : c)),
      },
    });
    assert.throws(
      () => api.create(withRank('too-big', fed.spec.adapter.rank * 2)),
      /adapterRank must not exceed adapter\.rank/,
    );
    const ok = api.create<{ spec: { clients: { adapterRank?: number }[] } }>(withRank('smaller', 4));
    assert.equal(ok.spec.clients[0]!.adapterRank, 4);
  } finally {
    await api.close();
  }
});

test('fednano run with clients of ranks 2, 4 and 8 matches simulate round for round', async () => {
  const c = await loadConfig(join(ROOT, 'test/fixtures/e2e-small.yaml'));
  c.spec.strategy = { name: 'fedavg' };
  c.spec.rounds = 2;
  c.spec.simulation.clients = 3;
  c.spec.simulation.adapterRanks = [2, 4, 8];
  const config = checkConfig(c);
  const docs: RoundDocument[] = [];
  const run = await runFederation(
    config,
    { workDir: await mkdtemp(join(tmpdir(), 'fednano-ranks-')), roundDeadlineSeconds: 120, insecure: true },
    { onRoundDocument: (d) => docs.push(d) },
  );
  const sim = await simulate(config);
  assert.deepEqual(docs[0]!.spec.ranks, { 'client-0': 2, 'client-1': 4 });
  // Each client's update is the size of its rank's tensors: rank 2 < rank 4 < rank 8.
  const bytes = Object.fromEntries(docs[0]!.status.accepted.map((a) => [a.client, a.bytes]));
  assert.ok(bytes['client-0']! < bytes['client-1']! && bytes['client-1']! < bytes['client-2']!, JSON.stringify(bytes));
  assert.equal(run.rounds.length, sim.rounds.length);
  for (const [i, r] of run.rounds.entries())
    assert.ok(
      Math.abs(r.loss - sim.rounds[i]!.loss) < 1e-3,
      `round ${i}: run ${r.loss}, simulate ${sim.rounds[i]!.loss}`,
    );
});
