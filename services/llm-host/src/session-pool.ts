import type {
  BackwardLogitsRequest,
  BackwardLogitsResult,
  ForwardBackwardRequest,
  ForwardBackwardResult,
  ForwardLogitsRequest,
  ForwardLogitsResult,
  LlmHostFiles,
  ScoreRequest,
  ScoreResult,
} from '@fednano/core';
import { DType, type SessionConfig, WorkerSession } from '@fednano/onnx-graph';

/**
 * The llm-host's ONNX Runtime sessions: n forward sessions (llm.onnx, for score) and n VJP sessions (llm_vjp.onnx, for
 * forwardBackward), each in its own worker thread. A batch runs on a free session of its kind; forward and VJP
 * sessions are separate slots so that evaluation traffic does not wait behind training traffic, and vice versa.
 * Given the answer-logits graphs (label-private mode), the pool also holds n sessions of each of those.
 */

export interface SessionPoolOptions {
  /** Session pairs (forward + VJP), i.e. batches of each kind that can run at once (default 1). */
  sessions?: number;
  /** ONNX Runtime threads per session (default: ORT's choice). */
  intraOpThreads?: number;
  /** 'cpu' (default) or 'cuda'. */
  executionProvider?: 'cpu' | 'cuda';
  /** See SessionConfig: spinning threads cut latency but steal cores from other sessions on small machines. */
  allowSpinning?: boolean;
}

export interface PoolRunOptions {
  /**
   * Move the batch's buffers to the worker instead of copying them; they are detached afterwards. For batches the
   * caller built for this run (as the batcher does), never for arrays the caller still needs.
   */
  transferInputs?: boolean;
}

/** The message for a CUDA session that ORT could not create: what is missing and how to install it. */
export function cudaUnavailableMessage(cause: string): string {
  return (
    'the CUDA execution provider is not available, so executionProvider "cuda" cannot be used ' +
    `(ONNX Runtime said: ${cause.split('\n')[0]}). To fix it, run on a machine with an NVIDIA GPU and its driver, ` +
    'with CUDA 12 and cuDNN 9 libraries, and install onnxruntime-node with its CUDA binaries: do not set ' +
    'ONNXRUNTIME_NODE_INSTALL=skip when installing (or run `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild ' +
    'onnxruntime-node`). Otherwise set executionProvider to "cpu".'
  );
}

/** ORT's complaints when the CUDA provider library or the GPU is missing, as opposed to a broken model. */
const CUDA_FAILURE = /cuda|execution ?provider|providers_shared|cudnn|libcu/i;

async function createSession(model: Uint8Array, config: SessionConfig): Promise<WorkerSession> {
  try {
    return await WorkerSession.create(model, config);
  } catch (e) {
    const message = (e as Error).message;
    if (config.executionProvider === 'cuda' && CUDA_FAILURE.test(message))
      throw new Error(cudaUnavailableMessage(message), { cause: e });
    throw e;
  }
}

/** Sessions of one kind, lent one batch at a time; a borrower waits (first come, first served) while none is free. */
class SessionSlots {
  private readonly free: WorkerSession[];
  private readonly waiters: { resolve(s: WorkerSession): void; reject(e: Error): void }[] = [];
  private closed = false;

  constructor(readonly all: readonly WorkerSession[]) {
    this.free = [...all];
  }

  async use<T>(fn: (session: WorkerSession) => Promise<T>): Promise<T> {
    const session = await this.acquire();
    try {
      return await fn(session);
    } finally {
      this.release(session);
    }
  }

  private acquire(): Promise<WorkerSession> {
    if (this.closed) return Promise.reject(new Error('the LLM session pool is closed'));
    const session = this.free.pop();
    if (session) return Promise.resolve(session);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private release(session: WorkerSession): void {
    const next = this.waiters.shift();
    if (next) next.resolve(session);
    else this.free.push(session);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.reject(new Error('the LLM session pool is closed'));
    await Promise.all(this.all.map((s) => s.close())); // each finishes its run in flight first
  }
}

/** Batch dimensions read off the arrays: the pool runs whatever model shape the files have. */
function dims(batch: number, embeds: Float32Array, targets: BigInt64Array): [number, number, number] {
  const t = targets.length / batch;
  const d = embeds.length / targets.length;
  if (!Number.isInteger(t) || !Number.isInteger(d) || t < 1 || d < 1)
    throw new Error(
      `inconsistent batch: ${batch} samples, ${targets.length} targets, ${embeds.length} embedding values`,
    );
  return [batch, t, d];
}

/** The label-private sessions: answer logits, and their VJP. */
interface AnswerSlots {
  forward: SessionSlots;
  vjp: SessionSlots;
}

export class LlmSessionPool {
  private constructor(
    private readonly forwardSlots: SessionSlots,
    private readonly vjpSlots: SessionSlots,
    private readonly answerSlots?: AnswerSlots,
  ) {}

  /**
   * Loads `sessions` forward and `sessions` VJP sessions (and as many of each answer-logits graph when given); fails
   * clearly when a 'cuda' session cannot be created.
   */
  static async create(files: LlmHostFiles, options: SessionPoolOptions = {}): Promise<LlmSessionPool> {
    const n = options.sessions ?? 1;
    if (!Number.isInteger(n) || n < 1) throw new Error(`sessions must be a positive integer, got ${n}`);
    const config: SessionConfig = {
      intraOpThreads: options.intraOpThreads,
      executionProvider: options.executionProvider ?? 'cpu',
      allowSpinning: options.allowSpinning,
    };
    // The first session alone: a misconfiguration (no CUDA) then costs one failed load, not 2n.
    const first = await createSession(files.llm, config);
    const answers = files.answerLogits && files.answerLogitsVjp ? [files.answerLogits, files.answerLogitsVjp] : [];
    const rest = await Promise.allSettled([
      ...Array.from({ length: n - 1 }, () => createSession(files.llm, config)),
      ...Array.from({ length: n }, () => createSession(files.llmVjp, config)),
      ...answers.flatMap((bytes) => Array.from({ length: n }, () => createSession(bytes, config))),
    ]);
    const created = [first, ...rest.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))];
    const failed = rest.find((r) => r.status === 'rejected');
    if (failed) {
      await Promise.allSettled(created.map((s) => s.close()));
      throw failed.reason;
    }
    return new LlmSessionPool(
      new SessionSlots(created.slice(0, n)),
      new SessionSlots(created.slice(n, 2 * n)),
      answers.length
        ? { forward: new SessionSlots(created.slice(2 * n, 3 * n)), vjp: new SessionSlots(created.slice(3 * n)) }
        : undefined,
    );
  }

  /** Whether the pool can run label-private batches (it was given the answer-logits graphs). */
  get labelPrivate(): boolean {
    return this.answerSlots !== undefined;
  }

  private answers(): AnswerSlots {
    if (!this.answerSlots) throw new Error('this session pool has no label-private (answer-logits) sessions');
    return this.answerSlots;
  }

  /** Runs the answer-logits graph on one batch: logits [b, k, V] at the positions (zeros in unused slots). */
  forwardLogits(
    batch: ForwardLogitsRequest,
    contextLength: number,
    options: PoolRunOptions = {},
  ): Promise<ForwardLogitsResult> {
    const feeds = answerFeeds(batch, contextLength);
    return this.answers().forward.use(async (session) => {
      const r = await session.run(feeds, { transferInputs: options.transferInputs });
      return { logits: r.answer_logits!.data as Float32Array };
    });
  }

  /** Runs the answer-logits VJP on one batch: d(Σ logitsGrad · logits)/d(inputs_embeds). */
  backwardLogits(
    batch: BackwardLogitsRequest,
    contextLength: number,
    options: PoolRunOptions = {},
  ): Promise<BackwardLogitsResult> {
    const { batch: b, answers: k } = batch;
    const feeds = {
      ...answerFeeds(batch, contextLength),
      answer_logits_grad: {
        dtype: DType.FLOAT,
        dims: [b, k, batch.logitsGrad.length / (b * k)],
        data: batch.logitsGrad,
      },
    };
    return this.answers().vjp.use(async (session) => {
      const r = await session.run(feeds, { outputs: ['grad_inputs_embeds'], transferInputs: options.transferInputs });
      return { gradInputsEmbeds: r.grad_inputs_embeds!.data as Float32Array };
    });
  }

  /** Session pairs in the pool. */
  get size(): number {
    return this.forwardSlots.all.length;
  }

  /** Runs llm_vjp.onnx on one batch: per-sample losses and the gradient of Σ lossWeights·loss w.r.t. the embeddings. */
  forwardBackward(batch: ForwardBackwardRequest, options: PoolRunOptions = {}): Promise<ForwardBackwardResult> {
    const [b, t, d] = dims(batch.batch, batch.inputsEmbeds, batch.targets);
    const feeds = {
      inputs_embeds: { dtype: DType.FLOAT, dims: [b, t, d], data: batch.inputsEmbeds },
      targets: { dtype: DType.INT64, dims: [b, t], data: batch.targets },
      sample_loss_grad: { dtype: DType.FLOAT, dims: [b], data: batch.lossWeights },
    };
    return this.vjpSlots.use(async (session) => {
      const r = await session.run(feeds, { transferInputs: options.transferInputs });
      return {
        sampleLoss: r.sample_loss!.data as Float32Array,
        gradInputsEmbeds: r.grad_inputs_embeds!.data as Float32Array,
      };
    });
  }

  /** Runs llm.onnx on one batch: per-sample losses and the logits at each sample's position. */
  score(batch: ScoreRequest, options: PoolRunOptions = {}): Promise<ScoreResult> {
    const [b, t, d] = dims(batch.batch, batch.inputsEmbeds, batch.targets);
    if (batch.positions.length !== b) throw new Error(`positions has ${batch.positions.length} values, expected ${b}`);
    const positions = [...batch.positions];
    const feeds = {
      inputs_embeds: { dtype: DType.FLOAT, dims: [b, t, d], data: batch.inputsEmbeds },
      targets: { dtype: DType.INT64, dims: [b, t], data: batch.targets },
    };
    return this.forwardSlots.use(async (session) => {
      const r = await session.run(feeds, {
        outputs: ['logits', 'sample_loss'],
        transferInputs: options.transferInputs,
      });
      const all = r.logits!.data as Float32Array;
      const v = all.length / (b * t);
      const logits = new Float32Array(b * v);
      positions.forEach((p, i) => {
        if (!(Number.isInteger(p) && p >= 0 && p < t))
          throw new Error(`position ${p} of sample ${i} is outside 0..${t - 1}`);
        logits.set(all.subarray((i * t + p) * v, (i * t + p + 1) * v), i * v);
      });
      return { sampleLoss: r.sample_loss!.data as Float32Array, logits };
    });
  }

  /** Refuses new batches, lets the running ones finish, and stops every worker thread. */
  async close(): Promise<void> {
    await Promise.all([
      this.forwardSlots.close(),
      this.vjpSlots.close(),
      this.answerSlots?.forward.close(),
      this.answerSlots?.vjp.close(),
    ]);
  }
}

/** The inputs both answer-logits graphs take: the embeddings and the answer positions. */
function answerFeeds(batch: ForwardLogitsRequest, contextLength: number) {
  const { batch: b, answers: k } = batch;
  return {
    inputs_embeds: {
      dtype: DType.FLOAT,
      dims: [b, contextLength, batch.inputsEmbeds.length / (b * contextLength)],
      data: batch.inputsEmbeds,
    },
    positions: { dtype: DType.INT64, dims: [b, k], data: batch.positions },
  };
}
