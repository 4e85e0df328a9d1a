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

/**
 * Label-private split training, step 1: the LM's logits at chosen positions only (the answer positions). No targets
 * go to the host; the client turns the logits into its loss and d(loss)/d(logits) itself (see label-private.ts).
 */
export interface ForwardLogitsRequest {
  batch: number;
  /** Position slots per sample, K (the longest answer in the batch). */
  answers: number;
  /** [batch, contextLength, dModel] */
  inputsEmbeds: Float32Array;
  /** [batch, answers]: positions in 0..contextLength-1 whose next-token logits are wanted, -1 for an unused slot. */
  positions: BigInt64Array;
}

export interface ForwardLogitsResult {
  /** [batch, answers, vocabSize]; zeros in unused slots. */
  logits: Float32Array;
}

/** Step 2: the host recomputes the forward pass (it keeps no state between the calls) and backpropagates logitsGrad. */
export interface BackwardLogitsRequest extends ForwardLogitsRequest {
  /** [batch, answers, vocabSize]: d(loss)/d(logits); unused slots are ignored. */
  logitsGrad: Float32Array;
}

export interface BackwardLogitsResult {
  /** [batch, contextLength, dModel]: d(Σ logitsGrad · logits)/d(inputsEmbeds). */
  gradInputsEmbeds: Float32Array;
}

export interface LlmHost {
  info(): Promise<LlmHostInfo>;
  forwardBackward(req: ForwardBackwardRequest): Promise<ForwardBackwardResult>;
  score(req: ScoreRequest): Promise<ScoreResult>;
  /** Label-private mode; absent on a host that does not serve it. */
  forwardLogits?(req: ForwardLogitsRequest): Promise<ForwardLogitsResult>;
  backwardLogits?(req: BackwardLogitsRequest): Promise<BackwardLogitsResult>;
  close(): Promise<void>;
}

/**
 * Checks a label-private request against the model's shape; throws an Error saying what is wrong. Shared by every host
 * so that the in-process host, the batching host and the gRPC server refuse the same requests with the same words.
 */
export function checkLogitsRequest(
  req: ForwardLogitsRequest | BackwardLogitsRequest,
  shape: { contextLength: number; dModel: number; vocabSize: number },
): void {
  const { contextLength: t, dModel: d, vocabSize: v } = shape;
  const { batch: b, answers: k } = req;
  if (!Number.isInteger(b) || b < 1) throw new Error(`batch must be a positive integer, got ${b}`);
  if (!Number.isInteger(k) || k < 1 || k > t) throw new Error(`answers must be an integer in 1..${t}, got ${k}`);
  if (!(req.inputsEmbeds instanceof Float32Array)) throw new Error('inputsEmbeds must be a Float32Array');
  if (req.inputsEmbeds.length !== b * t * d)
    throw new Error(`inputsEmbeds has ${req.inputsEmbeds.length} values, expected ${b}x${t}x${d}`);
  if (!(req.positions instanceof BigInt64Array)) throw new Error('positions must be a BigInt64Array');
  if (req.positions.length !== b * k)
    throw new Error(`positions has ${req.positions.length} values, expected ${b}x${k}`);
  for (let i = 0; i < req.positions.length; i++) {
    const p = req.positions[i]!;
    if (p < -1n || p >= BigInt(t))
      throw new Error(
        `positions[${i}] (sample ${Math.floor(i / k)}) is ${p}: expected -1 (unused) or a position in 0..${t - 1}`,
      );
  }
  if ('logitsGrad' in req) {
    if (!(req.logitsGrad instanceof Float32Array)) throw new Error('logitsGrad must be a Float32Array');
    if (req.logitsGrad.length !== b * k * v)
      throw new Error(`logitsGrad has ${req.logitsGrad.length} values, expected ${b}x${k}x${v}`);
  }
}

/** Bytes a request and its result put on the wire, for the split-training traffic reports. */
export function splitTrafficBytes(req: ForwardBackwardRequest): { up: number; down: number } {
  return {
    up: req.inputsEmbeds.byteLength + req.targets.byteLength + req.lossWeights.byteLength,
    down: req.inputsEmbeds.byteLength + 4 * req.batch,
  };
}

/**
 * Tensor bytes of one label-private step (ForwardLogits then BackwardLogits), counted like splitTrafficBytes: up are
 * the embeddings twice (the host keeps no state between the calls), the positions twice and d(loss)/d(logits); down
 * are the logits and the embedding gradient. `vocabSize` sizes the logits.
 */
export function labelPrivateTrafficBytes(req: ForwardLogitsRequest, vocabSize: number): { up: number; down: number } {
  const logits = 4 * req.batch * req.answers * vocabSize;
  return {
    up: 2 * (req.inputsEmbeds.byteLength + req.positions.byteLength) + logits,
    down: logits + req.inputsEmbeds.byteLength,
  };
}

/** The ONNX files of an llm-host; the answer-logits pair (from the model package's labelPrivateParts) is optional. */
export interface LlmHostFiles {
  llm: Uint8Array;
  llmVjp: Uint8Array;
  /** inputs_embeds, positions -> answer_logits: enables forwardLogits. */
  answerLogits?: Uint8Array;
  /** inputs_embeds, positions, answer_logits_grad -> grad_inputs_embeds: enables backwardLogits. */
  answerLogitsVjp?: Uint8Array;
}

/**
 * An llm-host in this process: the model folder's llm.onnx and llm_vjp.onnx (and, for label-private mode, the
 * answer-logits graphs) in ONNX Runtime worker threads.
 */
export class InProcessLlmHost implements LlmHost {
  private constructor(
    private readonly meta: LlmHostInfo,
    private readonly forward: WorkerSession,
    private readonly backward: WorkerSession,
    private readonly answerForward?: WorkerSession,
    private readonly answerBackward?: WorkerSession,
  ) {}

  static async create(meta: LlmHostInfo, files: LlmHostFiles, threads = 2): Promise<InProcessLlmHost> {
    const config = { intraOpThreads: threads };
    const optional = (bytes?: Uint8Array) => (bytes ? WorkerSession.create(bytes, config) : undefined);
    return new InProcessLlmHost(
      meta,
      await WorkerSession.create(files.llm, config),
      await WorkerSession.create(files.llmVjp, config),
      await optional(files.answerLogits),
      await optional(files.answerLogitsVjp),
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

  private labelPrivate(session: WorkerSession | undefined): WorkerSession {
    if (!session)
      throw new Error('this llm-host does not serve label-private mode: create it with the answer-logits graphs');
    return session;
  }

  async forwardLogits(req: ForwardLogitsRequest): Promise<ForwardLogitsResult> {
    const session = this.labelPrivate(this.answerForward);
    checkLogitsRequest(req, this.meta);
    const { contextLength: t, dModel: d } = this.meta;
    const r = await session.run({
      inputs_embeds: { dtype: DType.FLOAT, dims: [req.batch, t, d], data: req.inputsEmbeds },
      positions: { dtype: DType.INT64, dims: [req.batch, req.answers], data: req.positions },
    });
    return { logits: r.answer_logits!.data as Float32Array };
  }

  async backwardLogits(req: BackwardLogitsRequest): Promise<BackwardLogitsResult> {
    const session = this.labelPrivate(this.answerBackward);
    checkLogitsRequest(req, this.meta);
    const { contextLength: t, dModel: d, vocabSize: v } = this.meta;
    const r = await session.run(
      {
        inputs_embeds: { dtype: DType.FLOAT, dims: [req.batch, t, d], data: req.inputsEmbeds },
        positions: { dtype: DType.INT64, dims: [req.batch, req.answers], data: req.positions },
        answer_logits_grad: { dtype: DType.FLOAT, dims: [req.batch, req.answers, v], data: req.logitsGrad },
      },
      { outputs: ['grad_inputs_embeds'] },
    );
    return { gradInputsEmbeds: r.grad_inputs_embeds!.data as Float32Array };
  }

  async close(): Promise<void> {
    await this.forward.close();
    await this.backward.close();
    await this.answerForward?.close();
    await this.answerBackward?.close();
  }
}
