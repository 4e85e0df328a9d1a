import type {
  ForwardBackwardRequest,
  ForwardBackwardResult,
  LlmHost,
  LlmHostInfo,
  ScoreRequest,
  ScoreResult,
} from '@fednano/core';
import type { ForwardBackwardResponse__Output } from './generated/fednano/v1/ForwardBackwardResponse.js';
import type { InfoResponse__Output } from './generated/fednano/v1/InfoResponse.js';
import type { LlmHostClient } from './generated/fednano/v1/LlmHost.js';
import type { ScoreResponse__Output } from './generated/fednano/v1/ScoreResponse.js';
import {
  channelOptions,
  clientCredentials,
  DEFAULT_MAX_MESSAGE_BYTES,
  grpc,
  llmHostProto,
  type TlsFiles,
} from './grpc.js';
import { floatTensor, int64Tensor, readFloat } from './tensors.js';

export interface RetryPolicy {
  /** Total time a call may spend retrying before it fails (default 120 s). */
  budgetMs: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
}

export interface GrpcLlmHostOptions {
  tls?: TlsFiles;
  maxMessageBytes?: number;
  /** Per-attempt deadline (default 60 s). */
  deadlineMs?: number;
  retry?: Partial<RetryPolicy>;
  clientId?: string;
  /** Called before each retry, e.g. to log it. */
  onRetry?: (info: { method: string; attempt: number; delayMs: number; error: string }) => void;
}

/**
 * Statuses worth retrying: the host is down, restarting or draining. Bad requests (INVALID_ARGUMENT) and messages over
 * the size limit (RESOURCE_EXHAUSTED) would fail the same way again.
 */
const RETRYABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.ABORTED]);

/**
 * The llm-host over gRPC, as a client-agent uses it: the same `LlmHost` interface as the in-process host, so the
 * training code is identical. Calls are pure functions of their inputs, so retrying one after a host restart is safe.
 */
export class GrpcLlmHost implements LlmHost {
  private readonly client: LlmHostClient;
  private readonly retry: RetryPolicy;
  private meta?: LlmHostInfo;

  constructor(
    readonly address: string,
    private readonly o: GrpcLlmHostOptions = {},
  ) {
    const Ctor = llmHostProto().fednano.v1.LlmHost;
    this.client = new Ctor(
      address,
      clientCredentials(o.tls),
      channelOptions(o.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES),
    );
    this.retry = { budgetMs: 120_000, initialBackoffMs: 100, maxBackoffMs: 5_000, ...o.retry };
  }

  private unary<Res>(
    method: string,
    invoke: (options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => void,
  ): Promise<Res> {
    const started = Date.now();
    let attempt = 0;
    let backoff = this.retry.initialBackoffMs;
    const once = (): Promise<Res> =>
      new Promise((resolve, reject) =>
        invoke({ deadline: Date.now() + (this.o.deadlineMs ?? 60_000) }, (err, res) =>
          err ? reject(err) : resolve(res!),
        ),
      );
    const loop = async (): Promise<Res> => {
      for (;;) {
        try {
          return await once();
        } catch (e) {
          const err = e as grpc.ServiceError;
          attempt++;
          const delayMs = Math.min(this.retry.maxBackoffMs, backoff) * (0.5 + Math.random() / 2);
          if (!RETRYABLE.has(err.code) || Date.now() + delayMs - started > this.retry.budgetMs)
            throw new Error(
              `llm-host ${this.address} ${method} failed${attempt > 1 ? ` after ${attempt} attempts` : ''}: ${err.details || err.message}`,
            );
          this.o.onRetry?.({ method, attempt, delayMs: Math.round(delayMs), error: err.details || err.message });
          await new Promise((r) => setTimeout(r, delayMs));
          backoff *= 2;
        }
      }
    };
    return loop();
  }

  async info(): Promise<LlmHostInfo> {
    if (this.meta) return this.meta;
    const r = await this.unary<InfoResponse__Output>('Info', (o, cb) => this.client.info({}, o, cb));
    this.meta = {
      modelId: r.modelId!,
      dModel: r.dModel!,
      contextLength: r.contextLength!,
      vocabSize: r.vocabSize!,
    };
    return this.meta;
  }

  async forwardBackward(req: ForwardBackwardRequest): Promise<ForwardBackwardResult> {
    const { contextLength: t, dModel: d } = await this.info();
    const b = req.batch;
    const message = {
      inputsEmbeds: floatTensor([b, t, d], req.inputsEmbeds),
      targets: int64Tensor([b, t], req.targets),
      lossWeights: floatTensor([b], req.lossWeights),
      clientId: this.o.clientId ?? '',
    };
    const out = await this.unary<ForwardBackwardResponse__Output>('ForwardBackward', (o, cb) =>
      this.client.forwardBackward(message, o, cb),
    );
    return {
      sampleLoss: readFloat('sample_loss', out.sampleLoss, [b]).data,
      gradInputsEmbeds: readFloat('grad_inputs_embeds', out.gradInputsEmbeds, [b, t, d]).data,
    };
  }

  async score(req: ScoreRequest): Promise<ScoreResult> {
    const { contextLength: t, dModel: d, vocabSize: v } = await this.info();
    const b = req.batch;
    const message = {
      inputsEmbeds: floatTensor([b, t, d], req.inputsEmbeds),
      targets: int64Tensor([b, t], req.targets),
      positions: req.positions,
      clientId: this.o.clientId ?? '',
    };
    const out = await this.unary<ScoreResponse__Output>('Score', (o, cb) => this.client.score(message, o, cb));
    return {
      sampleLoss: readFloat('sample_loss', out.sampleLoss, [b]).data,
      logits: readFloat('logits', out.logits, [b, v]).data,
    };
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
