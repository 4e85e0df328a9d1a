import {
  type AdapterWeights,
  AnswerTally,
  clipGradNorm,
  type Dims,
  type EvaluationResult,
  type Example,
  type LocalTrainingConfig,
  makeOptimizer,
  sampleBatch,
} from '@fednano/core';
import { type LoadedModelFolder, llm, weightsOf } from '@fednano/model';
import {
  DType,
  Graph,
  Layers,
  LocalSession,
  rng,
  seededInit,
  type Tensor,
  vjp,
  WorkerSession,
} from '@fednano/onnx-graph';

/** Negative log-likelihood of token `id` under the logits row starting at `row`. */
function nll(logits: Float32Array, row: number, vocab: number, id: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let v = 0; v < vocab; v++) max = Math.max(max, logits[row + v]!);
  let sum = 0;
  for (let v = 0; v < vocab; v++) sum += Math.exp(logits[row + v]! - max);
  return max + Math.log(sum) - logits[row + id]!;
}

/**
 * The classic baseline FedNano is compared with (FedAvg-LoRA): every client holds the whole model and trains LoRA
 * adapters inside the LLM's attention and MLP layers, running the LLM's forward and backward itself. Only the LoRA
 * weights travel. The encoder, connector and embeddings stay frozen, so their outputs are precomputed as for
 * FedNano; the difference is where the LLM runs and what is adapted.
 */
export class LoraClientModel {
  private constructor(
    readonly dims: Dims,
    readonly vocab: number,
    readonly params: string[],
    readonly shapes: Record<string, number[]>,
    readonly initial: AdapterWeights,
    readonly modelParams: number,
    private readonly train: WorkerSession,
    private readonly forward: LocalSession,
    private readonly gradients: Record<string, string>,
    private readonly loss: string,
  ) {}

  static async create(
    folder: LoadedModelFolder,
    lora: { rank: number; alpha: number },
    seed: number,
  ): Promise<LoraClientModel> {
    const cfg = folder.manifest.config;
    const frozen = weightsOf(folder);
    const modelParams = [...frozen.values()].reduce((n, t) => n + t.data.length, 0);
    const build = () => {
      const g = new Graph({ name: 'llm_lora' });
      const layers = new Layers(g, seededInit(seed), new Map(frozen));
      layers.lora = { ...lora, applies: (p) => p.startsWith('llm.blocks.') };
      const embeds = g.input('inputs_embeds', DType.FLOAT, ['batch', cfg.contextLength, cfg.dModel]);
      const targets = g.input('targets', DType.INT64, ['batch', cfg.contextLength]);
      const out = llm(layers, cfg, embeds, targets);
      return { g, layers, out };
    };
    const t = build();
    t.g.output(t.out.meanLoss!);
    const { graph, gradients } = vjp(t.g, { of: t.out.meanLoss!, wrt: t.layers.loraParams, promoteInitializers: true });
    const e = build();
    for (const p of e.layers.loraParams) e.g.promoteToInput(p);
    e.g.output(e.g.op('Identity', [e.out.logits], {}, { outputs: ['logits'] }));
    const initial: AdapterWeights = new Map(
      t.layers.loraParams.map((p) => [p, (t.layers.weights.get(p)!.data as Float32Array).slice()]),
    );
    const shapes = Object.fromEntries(t.layers.loraParams.map((p) => [p, [...t.layers.weights.get(p)!.dims]]));
    return new LoraClientModel(
      { imageTokens: (cfg.imageSize / cfg.patchSize) ** 2, contextLength: cfg.contextLength, dModel: cfg.dModel },
      cfg.vocabSize,
      t.layers.loraParams,
      shapes,
      initial,
      modelParams,
      await WorkerSession.create(graph, { intraOpThreads: 2 }),
      await LocalSession.create(e.g, { intraOpThreads: 2 }),
      gradients,
      t.out.meanLoss!,
    );
  }

  private batchFeeds(batch: readonly Example[], w: AdapterWeights): Record<string, Tensor> {
    const { imageTokens: n, contextLength: t, dModel: d } = this.dims;
    const embeds = new Float32Array(batch.length * t * d);
    const targets = new BigInt64Array(batch.length * t);
    batch.forEach((ex, i) => {
      embeds.set(ex.image, i * t * d);
      embeds.set(ex.text, i * t * d + n * d);
      targets.set(ex.targets, i * t);
    });
    const feeds: Record<string, Tensor> = {
      inputs_embeds: { dtype: DType.FLOAT, dims: [batch.length, t, d], data: embeds },
      targets: { dtype: DType.INT64, dims: [batch.length, t], data: targets },
    };
    for (const p of this.params) feeds[p] = { dtype: DType.FLOAT, dims: this.shapes[p]!, data: w.get(p)! };
    return feeds;
  }

  /** Local training of the LoRA weights, the whole model running on the client. */
  async trainLocal(
    start: AdapterWeights,
    examples: readonly Example[],
    cfg: LocalTrainingConfig,
  ): Promise<{ weights: AdapterWeights; meanLoss: number; samples: number }> {
    const w: AdapterWeights = new Map([...start].map(([k, v]) => [k, v.slice()]));
    const optimizer = makeOptimizer(cfg);
    const random = rng(cfg.seed);
    let total = 0;
    let samples = 0;
    for (let step = 0; step < cfg.steps; step++) {
      const batch = sampleBatch(examples, cfg.batchSize, random);
      const r = await this.train.run(this.batchFeeds(batch, w), {
        outputs: [this.loss, ...this.params.map((p) => this.gradients[p]!)],
      });
      total += Number(r[this.loss]!.data[0]);
      samples += batch.length;
      const grads = new Map(this.params.map((p) => [p, r[this.gradients[p]!]!.data as Float32Array]));
      clipGradNorm(grads, cfg.clipNorm ?? 1);
      optimizer.step(w, grads);
    }
    return { weights: w, meanLoss: total / cfg.steps, samples };
  }

  async evaluate(w: AdapterWeights, examples: readonly Example[], batchSize = 64): Promise<EvaluationResult> {
    const tally = new AnswerTally();
    for (let s = 0; s < examples.length; s += batchSize) {
      const batch = examples.slice(s, s + batchSize);
      const logits = (await this.forward.run(this.batchFeeds(batch, w), ['logits'])).logits!.data as Float32Array;
      batch.forEach((ex, i) => {
        const row = (i * this.dims.contextLength + ex.answerPosition) * this.vocab;
        tally.add(ex, logits, row, nll(logits, row, this.vocab, ex.answerId));
      });
    }
    return tally.result();
  }

  async close(): Promise<void> {
    await this.train.close();
    await this.forward.close();
  }
}
