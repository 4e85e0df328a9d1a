import type {
  BackwardLogitsRequest,
  BackwardLogitsResult,
  ForwardBackwardRequest,
  ForwardBackwardResult,
  ForwardLogitsRequest,
  ForwardLogitsResult,
  LlmHost,
  LlmHostInfo,
  ScoreRequest,
  ScoreResult,
} from '@fednano/core';
import type { BackwardLogitsResponse__Output } from './generated/fednano/v1/BackwardLogitsResponse.js';
import type { ForwardBackwardResponse__Output } from './generated/fednano/v1/ForwardBackwardResponse.js';
import type { ForwardLogitsResponse__Output } from './generated/fednano/v1/ForwardLogitsResponse.js';
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
      channelOptions(o.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES, o.tls),
    );
    this.retry = { budgetMs: 120_000, initialBackoffMs: 100, maxBackoffMs: 5_000, ...o.retry };
  }

  /**
   * With mutual TLS, the server refuses a bad client certificate during the handshake and the client only sees that
   * no connection came up; say what to check instead of leaving a bare "failed to connect".
   */
  private explain(err: grpc.ServiceError): string {
    const detail = err.details || err.message;
    if (
      err.code === grpc.status.UNAVAILABLE &&
      this.o.tls?.ca &&
      /No connection established|Failed to connect/i.test(detail)
    )
      return `no TLS connection: if the llm-host is up, it refused this client certificate (missing, expired, not issued by the federation's CA, or not for client use) or its own certificate is not trusted by ${this.o.tls.ca} (${detail})`;
    return detail;
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
              `llm-host ${this.address} ${method} failed${attempt > 1 ? ` after ${attempt} attempts` : ''}: ${grpc.status[err.code] ?? err.code}: ${this.explain(err)}`,
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

  /** Label-private step 1: logits at the answer positions; the request holds no targets. */
  async forwardLogits(req: ForwardLogitsRequest): Promise<ForwardLogitsResult> {
    const { contextLength: t, dModel: d, vocabSize: v } = await this.info();
    const { batch: b, answers: k } = req;
    const message = {
      inputsEmbeds: floatTensor([b, t, d], req.inputsEmbeds),
      positions: int64Tensor([b, k], req.positions),
      clientId: this.o.clientId ?? '',
    };
    const out = await this.unary<ForwardLogitsResponse__Output>('ForwardLogits', (o, cb) =>
      this.client.forwardLogits(message, o, cb),
    );
    return { logits: readFloat('logits', out.logits, [b, k, v]).data };
  }

  /** Label-private step 2: backpropagates the client's d(loss)/d(logits); the host recomputes the forward pass. */
  async backwardLogits(req: BackwardLogitsRequest): Promise<BackwardLogitsResult> {
    const { contextLength: t, dModel: d, vocabSize: v } = await this.info();
    const { batch: b, answers: k } = req;
    const message = {
      inputsEmbeds: floatTensor([b, t, d], req.inputsEmbeds),
      positions: int64Tensor([b, k], req.positions),
      logitsGrad: floatTensor([b, k, v], req.logitsGrad),
      clientId: this.o.clientId ?? '',
    };
    const out = await this.unary<BackwardLogitsResponse__Output>('BackwardLogits', (o, cb) =>
      this.client.backwardLogits(message, o, cb),
    );
    return { gradInputsEmbeds: readFloat('grad_inputs_embeds', out.gradInputsEmbeds, [b, t, d]).data };
  }

  async close(): Promise<void> {
    this.client.close();
  }
}
