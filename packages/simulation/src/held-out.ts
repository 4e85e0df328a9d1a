import {
  type AdapterConfig,
  type AdapterWeights,
  type Dims,
  type EvaluationResult,
  type Example,
  evaluateAdapters,
  InProcessLlmHost,
} from '@fednano/core';
import { readShard, ShardError } from '@fednano/data';
import { imageTokenCount, loadModelFolder, openModel } from '@fednano/model';
import { prepareExamples } from './plan.js';
import { NanoEdgeCache } from './prepare.js';

/**
 * A held-out set on disk (a shard folder, as `writeShard` writes a client's data) made ready for scoring: its
 * questions run once through the frozen NanoEdge, and the frozen LLM opened in this process. `score` is the very
 * evaluation `simulate` runs after each round (same examples order, same batches, same ONNX Runtime graphs), so an
 * adapter scores the same here as there. Used by the aggregator (each new global adapter) and `fednano eval
 * --adapter`.
 */
export class HeldOutSet {
  private constructor(
    /** The shard folder. */
    readonly dir: string,
    readonly examples: readonly Example[],
    readonly dims: Dims,
    private readonly host: InProcessLlmHost,
  ) {}

  /** Throws ShardError when the shard is missing, unreadable or empty; model problems throw as they are. */
  static async open(modelPath: string, shardDir: string): Promise<HeldOutSet> {
    const shard = await readShard(shardDir);
    if (shard.questions.length === 0) throw new ShardError(`${shardDir}/shard.json has no questions`);
    const folder = await loadModelFolder(modelPath);
    const cfg = folder.manifest.config;
    const model = await openModel(folder);
    const examples = await prepareExamples(new NanoEdgeCache(model), shard.sets, shard.questions).finally(() =>
      model.close(),
    );
    const host = await InProcessLlmHost.create(
      {
        modelId: folder.manifest.parts.llm.sha256.slice(0, 12),
        dModel: cfg.dModel,
        contextLength: cfg.contextLength,
        vocabSize: cfg.vocabSize,
      },
      { llm: folder.files.llm, llmVjp: folder.files.llm_vjp },
    );
    const dims = { imageTokens: imageTokenCount(cfg), contextLength: cfg.contextLength, dModel: cfg.dModel };
    return new HeldOutSet(shardDir, examples, dims, host);
  }

  score(adapter: AdapterConfig, weights: AdapterWeights): Promise<EvaluationResult> {
    return evaluateAdapters(this.host, this.dims, adapter, weights, this.examples);
  }

  close(): Promise<void> {
    return this.host.close();
  }
}
