import type { LlmHost, LlmHostInfo } from '@fednano/core';
import { floatTensor, grpc, type LlmHostHandlers, readFloat, readInt64 } from '@fednano/wire';

/**
 * The gRPC handlers of label-private mode (ForwardLogits, BackwardLogits). They live apart from server.ts so that the
 * server file only spreads them into its handler table; they go through the server's own `unary` wrapper, so they get
 * the same authorization, metrics and error mapping as every other call.
 */
export type UnaryWrapper = <Req, Res>(
  method: string,
  handle: (req: Req, peer: string) => Promise<{ response: Res; bytesIn: number; bytesOut: number }>,
) => grpc.handleUnaryCall<Req, Res>;

type ForwardLogitsCall = Parameters<LlmHostHandlers['ForwardLogits']>[0]['request'];
type BackwardLogitsCall = Parameters<LlmHostHandlers['BackwardLogits']>[0]['request'];

/** A host without the answer-logits graphs answers UNIMPLEMENTED, which a client must not retry. */
const unimplemented =
  (method: string): grpc.handleUnaryCall<unknown, never> =>
  (_call, callback) =>
    callback({
      code: grpc.status.UNIMPLEMENTED,
      details: `${method}: this llm-host does not serve label-private mode (start it with --serve-label-private)`,
    });

export function labelPrivateHandlers(
  host: LlmHost,
  info: LlmHostInfo,
  unary: UnaryWrapper,
): Pick<LlmHostHandlers, 'ForwardLogits' | 'BackwardLogits'> {
  const { contextLength: t, dModel: d, vocabSize: v } = info;
  const forwardLogits = host.forwardLogits?.bind(host);
  const backwardLogits = host.backwardLogits?.bind(host);
  return {
    ForwardLogits: forwardLogits
      ? unary('ForwardLogits', async (req: ForwardLogitsCall) => {
          const embeds = readFloat('inputs_embeds', req.inputsEmbeds, [undefined, t, d]);
          const b = embeds.dims[0]!;
          const positions = readInt64('positions', req.positions, [b, undefined]);
          const k = positions.dims[1]!;
          // Range checks of the positions happen in the host (checkLogitsRequest), before the request is batched.
          const r = await forwardLogits({ batch: b, answers: k, inputsEmbeds: embeds.data, positions: positions.data });
          return {
            response: { logits: floatTensor([b, k, v], r.logits) },
            bytesIn: embeds.data.byteLength + positions.data.byteLength,
            bytesOut: r.logits.byteLength,
          };
        })
      : unimplemented('ForwardLogits'),
    BackwardLogits: backwardLogits
      ? unary('BackwardLogits', async (req: BackwardLogitsCall) => {
          const embeds = readFloat('inputs_embeds', req.inputsEmbeds, [undefined, t, d]);
          const b = embeds.dims[0]!;
          const positions = readInt64('positions', req.positions, [b, undefined]);
          const k = positions.dims[1]!;
          const grad = readFloat('logits_grad', req.logitsGrad, [b, k, v]);
          const r = await backwardLogits({
            batch: b,
            answers: k,
            inputsEmbeds: embeds.data,
            positions: positions.data,
            logitsGrad: grad.data,
          });
          return {
            response: { gradInputsEmbeds: floatTensor([b, t, d], r.gradInputsEmbeds) },
            bytesIn: embeds.data.byteLength + positions.data.byteLength + grad.data.byteLength,
            bytesOut: r.gradInputsEmbeds.byteLength,
          };
        })
      : unimplemented('BackwardLogits'),
  };
}
