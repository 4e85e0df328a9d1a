import type { LlmHost, LlmHostInfo } from '@fednano/core';
import type { Logger } from '@fednano/service-kit';
import {
  channelOptions,
  floatTensor,
  grpc,
  type LlmHostHandlers,
  llmHostProto,
  readFloat,
  readInt64,
  TensorError,
} from '@fednano/wire';
import { AuthorizationError, authorizeCaller, type CallerPolicy } from './authorization.js';
import { labelPrivateHandlers } from './label-private-handlers.js';
import type { LlmHostMetrics } from './metrics.js';

export interface LlmHostServiceOptions {
  host: LlmHost;
  info: LlmHostInfo;
  maxBatch: number;
  /** Largest request a client may send (and response the server sends), bytes. */
  maxMessageBytes: number;
  metrics: LlmHostMetrics;
  log: Logger;
  /** With mutual TLS: which client certificates may call (federation, revocations). Absent: any caller. */
  authorization?: CallerPolicy;
}

/** Maps a failure to the gRPC status a client can act on: its own bad input is not worth retrying; the rest is. */
function toServiceError(e: unknown): Partial<grpc.StatusObject> {
  const message = (e as Error).message ?? String(e);
  if (e instanceof TensorError || /expected|must be|outside/.test(message))
    return { code: grpc.status.INVALID_ARGUMENT, details: message };
  if (/closed|draining|shutting down/i.test(message)) return { code: grpc.status.UNAVAILABLE, details: message };
  return { code: grpc.status.INTERNAL, details: message };
}

/**
 * The gRPC `fednano.v1.LlmHost` service over an `LlmHost` (the batching one in production): decode and check the
 * tensors, call the host, encode the answer, and account for every request in the metrics.
 */
export function createLlmHostServer(o: LlmHostServiceOptions): grpc.Server {
  const { host, info, metrics, log } = o;
  const t = info.contextLength;
  const d = info.dModel;

  function unary<Req, Res>(
    method: string,
    handle: (req: Req, peer: string) => Promise<{ response: Res; bytesIn: number; bytesOut: number }>,
  ): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const end = metrics.requestDuration.startTimer({ method });
      if (o.authorization) {
        const claimed = (call.request as { clientId?: string }).clientId;
        try {
          authorizeCaller(call.getAuthContext(), claimed, o.authorization);
        } catch (e) {
          if (!(e instanceof AuthorizationError)) throw e;
          metrics.refused.inc({ reason: e.reason });
          end({ code: grpc.status[e.code] });
          log.warn({ method, peer: call.getPeer(), reason: e.reason, err: e.message }, 'request refused');
          callback({ code: e.code, details: e.message });
          return;
        }
      }
      handle(call.request, call.getPeer()).then(
        ({ response, bytesIn, bytesOut }) => {
          metrics.receivedBytes.inc({ method }, bytesIn);
          metrics.sentBytes.inc({ method }, bytesOut);
          end({ code: 'OK' });
          callback(null, response);
        },
        (e: unknown) => {
          const status = toServiceError(e);
          end({ code: grpc.status[status.code!] });
          const level = status.code === grpc.status.INVALID_ARGUMENT ? 'warn' : 'error';
          log[level]({ method, peer: call.getPeer(), err: (e as Error).message }, 'request failed');
          callback(status);
        },
      );
    };
  }

  const handlers: LlmHostHandlers = {
    Info: unary('Info', async () => ({
      response: { ...info, maxBatch: o.maxBatch },
      bytesIn: 0,
      bytesOut: 0,
    })),
    ForwardBackward: unary(
      'ForwardBackward',
      async (req: Parameters<LlmHostHandlers['ForwardBackward']>[0]['request']) => {
        const embeds = readFloat('inputs_embeds', req.inputsEmbeds, [undefined, t, d]);
        const b = embeds.dims[0]!;
        const targets = readInt64('targets', req.targets, [b, t]);
        const weights = readFloat('loss_weights', req.lossWeights, [b]);
        const r = await host.forwardBackward({
          batch: b,
          inputsEmbeds: embeds.data,
          targets: targets.data,
          lossWeights: weights.data,
        });
        return {
          response: {
            sampleLoss: floatTensor([b], r.sampleLoss),
            gradInputsEmbeds: floatTensor([b, t, d], r.gradInputsEmbeds),
          },
          bytesIn: embeds.data.byteLength + targets.data.byteLength + weights.data.byteLength,
          bytesOut: r.sampleLoss.byteLength + r.gradInputsEmbeds.byteLength,
        };
      },
    ),
    Score: unary('Score', async (req: Parameters<LlmHostHandlers['Score']>[0]['request']) => {
      const embeds = readFloat('inputs_embeds', req.inputsEmbeds, [undefined, t, d]);
      const b = embeds.dims[0]!;
      const targets = readInt64('targets', req.targets, [b, t]);
      if (req.positions.length !== b)
        throw new TensorError(`positions has ${req.positions.length} entries, expected ${b}`);
      const r = await host.score({
        batch: b,
        inputsEmbeds: embeds.data,
        targets: targets.data,
        positions: req.positions,
      });
      return {
        response: {
          sampleLoss: floatTensor([b], r.sampleLoss),
          logits: floatTensor([b, info.vocabSize], r.logits),
        },
        bytesIn: embeds.data.byteLength + targets.data.byteLength + 4 * b,
        bytesOut: r.sampleLoss.byteLength + r.logits.byteLength,
      };
    }),
    ...labelPrivateHandlers(host, info, unary),
  };
  const server = new grpc.Server(channelOptions(o.maxMessageBytes));
  server.addService(llmHostProto().fednano.v1.LlmHost.service, handlers);
  return server;
}
