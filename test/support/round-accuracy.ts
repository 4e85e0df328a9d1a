import { join } from 'node:path';
import { type AdapterConfig, adapterShapes, type Dims, evaluateAdapters, InProcessLlmHost } from '@fednano/core';
import { imageTokenCount, loadModelFolder, openModel } from '@fednano/model';
import { loadConfig, NanoEdgeCache, planFederation, prepareExamples } from '@fednano/simulation';
import { connectNats, ensureStorage, getAdapter } from '@fednano/wire';

/**
 * Scores global adapters that a real round left in the NATS Object Store on the held-out test questions of
 * test/fixtures/e2e-small.yaml (the fixture the e2e suites write client shards from), with the frozen model in this
 * process. The aggregator scores every round itself (its --evaluation-data, a Federation's spec.evaluation); the e2e
 * suites check its numbers against these, computed here from the fixture rather than read from any shard.
 */
const ROOT = new URL('../../', import.meta.url).pathname;

export interface AdapterRef {
  object: string;
  sha256: string;
}

export interface RoundScore {
  accuracy: number;
  loss: number;
  examples: number;
}

export async function scoreAdapters(
  natsUrl: string,
  adapter: AdapterConfig,
  refs: readonly AdapterRef[],
  o: { credsFile?: string; fixture?: string } = {},
): Promise<RoundScore[]> {
  const config = await loadConfig(join(ROOT, o.fixture ?? 'test/fixtures/e2e-small.yaml'));
  const folder = await loadModelFolder(join(ROOT, config.spec.model.path));
  const cfg = folder.manifest.config;
  const plan = await planFederation(config, folder.manifest.recipe.seed);
  const model = await openModel(folder);
  const examples = await prepareExamples(new NanoEdgeCache(model), plan.sets, plan.test).finally(() => model.close());
  const dims: Dims = { imageTokens: imageTokenCount(cfg), contextLength: cfg.contextLength, dModel: cfg.dModel };
  const host = await InProcessLlmHost.create(
    {
      modelId: folder.manifest.parts.llm.sha256.slice(0, 12),
      dModel: cfg.dModel,
      contextLength: cfg.contextLength,
      vocabSize: cfg.vocabSize,
    },
    { llm: folder.files.llm, llmVjp: folder.files.llm_vjp },
  );
  const nc = await connectNats({ servers: natsUrl, name: 'e2e-evaluator', credsFile: o.credsFile });
  try {
    const { objects } = await ensureStorage(nc);
    const shapes = adapterShapes(cfg.dModel, adapter.rank);
    const scores: RoundScore[] = [];
    for (const ref of refs) {
      const weights = await getAdapter(objects, ref.object, shapes, ref.sha256);
      const r = await evaluateAdapters(host, dims, adapter, weights, examples);
      scores.push({ accuracy: r.accuracy, loss: r.loss, examples: examples.length });
    }
    return scores;
  } finally {
    await nc.drain();
    await host.close();
  }
}
