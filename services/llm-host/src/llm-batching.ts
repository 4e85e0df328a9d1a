import type {
  BackwardLogitsRequest,
  BackwardLogitsResult,
  ForwardBackwardRequest,
  ForwardBackwardResult,
  ForwardLogitsRequest,
  ForwardLogitsResult,
  LlmHost,
  LlmHostFiles,
  LlmHostInfo,
  ScoreRequest,
  ScoreResult,
} from '@fednano/core';
import { type BatchStats, DynamicBatcher } from './batcher.js';
import {
  type BatchKernel,
  backwardLogitsKernel,
  forwardBackwardKernel,
  forwardLogitsKernel,
  scoreKernel,
} from './llm-kernels.js';
import { LlmSessionPool, type SessionPoolOptions } from './session-pool.js';

/**
 * The llm-host's LlmHost: each call is one client's request, and concurrent requests share batches. A request is
 * checked before it is queued, so a malformed one fails alone instead of failing the batch it would have joined.
 */

export type LlmCall = 'forwardBackward' | 'score' | 'forwardLogits' | 'backwardLogits';

export interface BatchingOptions {
  /** Most samples in one batch (default 32). */
  maxBatch?: number;
  /** How long a request waits for others to share its batch (default 2 ms; 0 runs as soon as a session is free). */
  maxDelayMs?: number;
  /** Batch sizes to pad up to; the last must equal maxBatch (default: powers of two, then maxBatch). */
  buckets?: readonly number[];
  /** Called after each batch, e.g. to update metrics. */
  onBatch?(call: LlmCall, stats: BatchStats): void;
}

export type BatchingLlmOptions = SessionPoolOptions & BatchingOptions;

export class BatchingLlm implements LlmHost {
  private readonly fb: DynamicBatcher<ForwardBackwardRequest, ForwardBackwardResult>;
  private readonly sc: DynamicBatcher<ScoreRequest, ScoreResult>;
  private readonly fbKernel: BatchKernel<ForwardBackwardRequest, ForwardBackwardResult>;
  private readonly scKernel: BatchKernel<ScoreRequest, ScoreResult>;
  /** Label-private batchers, present when the pool has the answer-logits sessions. */
  private readonly fl?: DynamicBatcher<ForwardLogitsRequest, ForwardLogitsResult>;
  private readonly bl?: DynamicBatcher<BackwardLogitsRequest, BackwardLogitsResult>;
  /**
   * Label-private mode, defined only when served: the gRPC server answers UNIMPLEMENTED for a host without them, and
   * training code can tell before it starts.
   */
  readonly forwardLogits?: (req: ForwardLogitsRequest) => Promise<ForwardLogitsResult>;
  readonly backwardLogits?: (req: BackwardLogitsRequest) => Promise<BackwardLogitsResult>;
  private closing?: Promise<void>;

  /** Batches on an existing pool, which the BatchingLlm then owns (close() closes it). */
  constructor(
    private readonly meta: LlmHostInfo,
    private readonly pool: LlmSessionPool,
    options: BatchingOptions = {},
  ) {
    const common = {
      maxBatch: options.maxBatch ?? 32,
      maxDelayMs: options.maxDelayMs ?? 2,
      buckets: options.buckets,
      // One batch per session of the kind: more would only queue inside the pool, and fewer would leave one idle.
      concurrency: pool.size,
    };
    const fbKernel = forwardBackwardKernel(meta);
    const scKernel = scoreKernel(meta);
    this.fbKernel = fbKernel;
    this.scKernel = scKernel;
    this.fb = new DynamicBatcher({
      ...common,
      size: fbKernel.size,
      slice: fbKernel.slice,
      merge: fbKernel.merge,
      // The padded batch is built here for this run only, so its buffers can move to the worker without a copy.
      run: async (parts, padded) =>
        fbKernel.split(await pool.forwardBackward(fbKernel.concat(parts, padded), { transferInputs: true }), parts),
      onBatch: options.onBatch && ((stats) => options.onBatch!('forwardBackward', stats)),
    });
    this.sc = new DynamicBatcher({
      ...common,
      size: scKernel.size,
      slice: scKernel.slice,
      merge: scKernel.merge,
      run: async (parts, padded) =>
        scKernel.split(await pool.score(scKernel.concat(parts, padded), { transferInputs: true }), parts),
      onBatch: options.onBatch && ((stats) => options.onBatch!('score', stats)),
    });
    if (pool.labelPrivate) {
      const t = meta.contextLength;
      const flKernel = forwardLogitsKernel(meta);
      const blKernel = backwardLogitsKernel(meta);
      const fl = new DynamicBatcher<ForwardLogitsRequest, ForwardLogitsResult>({
        ...common,
        size: flKernel.size,
        slice: flKernel.slice,
        merge: flKernel.merge,
        run: async (parts, padded) =>
          flKernel.split(await pool.forwardLogits(flKernel.concat(parts, padded), t, { transferInputs: true }), parts),
        onBatch: options.onBatch && ((stats) => options.onBatch!('forwardLogits', stats)),
      });
      const bl = new DynamicBatcher<BackwardLogitsRequest, BackwardLogitsResult>({
        ...common,
        size: blKernel.size,
        slice: blKernel.slice,
        merge: blKernel.merge,
        run: async (parts, padded) =>
          blKernel.split(await pool.backwardLogits(blKernel.concat(parts, padded), t, { transferInputs: true }), parts),
        onBatch: options.onBatch && ((stats) => options.onBatch!('backwardLogits', stats)),
      });
      this.fl = fl;
      this.bl = bl;
      this.forwardLogits = async (req) => {
        flKernel.validate(req);
        return fl.submit(req);
      };
      this.backwardLogits = async (req) => {
        blKernel.validate(req);
        return bl.submit(req);
      };
    }
  }

  /**
   * Loads `sessions` session pairs from the model's llm.onnx and llm_vjp.onnx (and the answer-logits graphs, when
   * given, for label-private mode) and batches over them.
   */
  static async create(meta: LlmHostInfo, files: LlmHostFiles, options: BatchingLlmOptions = {}): Promise<BatchingLlm> {
    const { sessions, intraOpThreads, executionProvider, allowSpinning, ...batching } = options;
    const pool = await LlmSessionPool.create(files, { sessions, intraOpThreads, executionProvider, allowSpinning });
    return new BatchingLlm(meta, pool, batching);
  }

  /** Samples waiting for a batch, per call. */
  get queueDepth(): Record<LlmCall, number> {
    return {
      forwardBackward: this.fb.queueDepth,
      score: this.sc.queueDepth,
      forwardLogits: this.fl?.queueDepth ?? 0,
      backwardLogits: this.bl?.queueDepth ?? 0,
    };
  }

  async info(): Promise<LlmHostInfo> {
    return this.meta;
  }

  async forwardBackward(req: ForwardBackwardRequest): Promise<ForwardBackwardResult> {
    this.fbKernel.validate(req);
    return this.fb.submit(req);
  }

  async score(req: ScoreRequest): Promise<ScoreResult> {
    this.scKernel.validate(req);
    return this.sc.submit(req);
  }

  /** Refuses new requests, finishes the queued and running ones, then releases the sessions. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all([this.fb.close(), this.sc.close(), this.fl?.close(), this.bl?.close()]);
      await this.pool.close();
    })();
    return this.closing;
  }
}
