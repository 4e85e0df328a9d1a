import { DType, WorkerSession } from '@fednano/onnx-graph';

/**
 * The frozen LLM as the client sees it: the llm-host. Split training sends adapted embeddings e' and targets, and
 * gets back per-sample losses and ∂L/∂e'. Losses are per sample, and the gradient is of Σ_b w_b · loss_b, so the
 * host may batch samples from many clients in one run and route each sample's part back.
 */
export interface LlmHostInfo {
  modelId: string;
  dModel: number;
  contextLength: number;
  vocabSize: number;
}

export interface ForwardBackwardRequest {
  batch: number;
  /** [batch, contextLength, dModel] */
  inputsEmbeds: Float32Array;
  /** [batch, contextLength], -100 where nothing is predicted */
  targets: BigInt64Array;
  /** [batch]: weight of each sample's loss in the differentiated sum. */
  lossWeights: Float32Array;
}

export interface ForwardBackwardResult {
  /** [batch]: summed next-token NLL over each sample's targets. */
  sampleLoss: Float32Array;
  /** [batch, contextLength, dModel] */
  gradInputsEmbeds: Float32Array;
}

export interface ScoreRequest {
  batch: number;
  inputsEmbeds: Float32Array;
  targets: BigInt64Array;
  /** Position per sample whose next-token logits to return (e.g. the answer position). */
  positions: number[];
}

export interface ScoreResult {
  sampleLoss: Float32Array;
  /** [batch, vocabSize]: logits at each sample's requested position. */
  logits: Float32Array;
}

export interface LlmHost {
  info(): Promise<LlmHostInfo>;
  forwardBackward(req: ForwardBackwardRequest): Promise<ForwardBackwardResult>;
  score(req: ScoreRequest): Promise<ScoreResult>;
  close(): Promise<void>;
}

/** Bytes a request and its result put on the wire, for the split-training traffic reports. */
export function splitTrafficBytes(req: ForwardBackwardRequest): { up: number; down: number } {
  return {
    up: req.inputsEmbeds.byteLength + req.targets.byteLength + req.lossWeights.byteLength,
    down: req.inputsEmbeds.byteLength + 4 * req.batch,
  };
}

/** An llm-host in this process: the model folder's llm.onnx and llm_vjp.onnx in ONNX Runtime worker threads. */
export class InProcessLlmHost implements LlmHost {
  private constructor(
    private readonly meta: LlmHostInfo,
    private readonly forward: WorkerSession,
    private readonly backward: WorkerSession,
  ) {}

  static async create(
    meta: LlmHostInfo,
    files: { llm: Uint8Array; llmVjp: Uint8Array },
    threads = 2,
  ): Promise<InProcessLlmHost> {
    const config = { intraOpThreads: threads };
    return new InProcessLlmHost(
      meta,
      await WorkerSession.create(files.llm, config),
      await WorkerSession.create(files.llmVjp, config),
    );
  }

  async info(): Promise<LlmHostInfo> {
    return this.meta;
  }

  private check(batch: number, embeds: Float32Array, targets: BigInt64Array): [number, number, number] {
    const { contextLength: t, dModel: d } = this.meta;
    if (!Number.isInteger(batch) || batch < 1) throw new Error(`batch must be a positive integer, got ${batch}`);
    if (embeds.length !== batch * t * d)
      throw new Error(`inputsEmbeds has ${embeds.length} values, expected ${batch}x${t}x${d}`);
    if (targets.length !== batch * t) throw new Error(`targets has ${targets.length} values, expected ${batch}x${t}`);
    return [batch, t, d];
  }

  async forwardBackward(req: ForwardBackwardRequest): Promise<ForwardBackwardResult> {
    const [b, t, d] = this.check(req.batch, req.inputsEmbeds, req.targets);
    if (req.lossWeights.length !== b)
      throw new Error(`lossWeights has ${req.lossWeights.length} values, expected ${b}`);
    const r = await this.backward.run({
      inputs_embeds: { dtype: DType.FLOAT, dims: [b, t, d], data: req.inputsEmbeds },
      targets: { dtype: DType.INT64, dims: [b, t], data: req.targets },
      sample_loss_grad: { dtype: DType.FLOAT, dims: [b], data: req.lossWeights },
    });
    return {
      sampleLoss: r.sample_loss!.data as Float32Array,
      gradInputsEmbeds: r.grad_inputs_embeds!.data as Float32Array,
    };
  }

  async score(req: ScoreRequest): Promise<ScoreResult> {
    const [b, t, d] = this.check(req.batch, req.inputsEmbeds, req.targets);
    const r = await this.forward.run({
      inputs_embeds: { dtype: DType.FLOAT, dims: [b, t, d], data: req.inputsEmbeds },
      targets: { dtype: DType.INT64, dims: [b, t], data: req.targets },
    });
    const v = this.meta.vocabSize;
    const all = r.logits!.data as Float32Array;
    const logits = new Float32Array(b * v);
    req.positions.forEach((p, i) => {
      if (!(p >= 0 && p < t)) throw new Error(`position ${p} of sample ${i} is outside 0..${t - 1}`);
      logits.set(all.subarray((i * t + p) * v, (i * t + p + 1) * v), i * v);
    });
    return { sampleLoss: r.sample_loss!.data as Float32Array, logits };
  }

  async close(): Promise<void> {
    await this.forward.close();
    await this.backward.close();
  }
}
