import {
  type BackwardLogitsRequest,
  type BackwardLogitsResult,
  checkLogitsRequest,
  type ForwardBackwardRequest,
  type ForwardBackwardResult,
  type ForwardLogitsRequest,
  type ForwardLogitsResult,
  type ScoreRequest,
  type ScoreResult,
} from '@fednano/core';

/**
 * How the llm-host's two calls batch: requests are concatenated along the sample axis into one padded batch, and the
 * batch's results are cut back into one result per request. This is sound because every sample's loss, logits and
 * gradient depend on that sample alone (attention never crosses samples). Padding rows have zero embeddings,
 * targets all IGNORE_INDEX and loss weight 0, so they add nothing to the differentiated sum; their outputs are dropped.
 */

/** Target value meaning "nothing predicted here"; the loss skips it. */
export const IGNORE_INDEX = -100n;

/** The model dimensions a request is checked against. */
export interface LlmShape {
  contextLength: number;
  dModel: number;
  vocabSize: number;
}

/** Everything a DynamicBatcher needs to batch one kind of request, plus the checks that run before queueing. */
export interface BatchKernel<Req, Res> {
  /** Throws an Error saying what is wrong with a request; a bad request must never reach a shared batch. */
  validate(req: Req): void;
  size(req: Req): number;
  /** Samples [start, end) as a request of their own (views, no copy). */
  slice(req: Req, start: number, end: number): Req;
  /** The parts, in order, as one request of `paddedSize` samples (fresh buffers, so they may be transferred). */
  concat(parts: Req[], paddedSize: number): Req;
  /** The batch result cut into one result per part, in order (copies, so a part does not pin the whole batch). */
  split(result: Res, parts: Req[]): Res[];
  /** The results of a split request's chunks, in order, joined into one. */
  merge(chunks: Res[]): Res;
}

function checkCommon(
  batch: number,
  embeds: Float32Array,
  targets: BigInt64Array,
  { contextLength: t, dModel: d, vocabSize: v }: LlmShape,
): void {
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`batch must be a positive integer, got ${batch}`);
  if (!(embeds instanceof Float32Array)) throw new Error('inputsEmbeds must be a Float32Array');
  if (!(targets instanceof BigInt64Array)) throw new Error('targets must be a BigInt64Array');
  if (embeds.length !== batch * t * d)
    throw new Error(
      `inputsEmbeds has ${embeds.length} values, expected batch x contextLength x dModel = ${batch}x${t}x${d}`,
    );
  if (targets.length !== batch * t)
    throw new Error(`targets has ${targets.length} values, expected batch x contextLength = ${batch}x${t}`);
  // An out-of-range target would fail the whole batch it shares with other clients' samples, so it stops here.
  const vocab = BigInt(v);
  for (let i = 0; i < targets.length; i++) {
    const y = targets[i]!;
    if (y !== IGNORE_INDEX && (y < 0n || y >= vocab))
      throw new Error(
        `targets[${i}] (sample ${Math.floor(i / t)}, position ${i % t}) is ${y}: expected ${IGNORE_INDEX} or a token id in 0..${v - 1}`,
      );
  }
}

/** The arrays one after the other in a new array of `total` values (zeros after them: padding). */
function concatFloat(arrays: Float32Array[], total = arrays.reduce((n, a) => n + a.length, 0)): Float32Array {
  const out = new Float32Array(total);
  let offset = 0;
  for (const a of arrays) {
    out.set(a, offset);
    offset += a.length;
  }
  return out;
}

/** Like concatFloat, with IGNORE_INDEX after the arrays, so padding rows predict nothing. */
function concatTargets(arrays: BigInt64Array[], total: number): BigInt64Array {
  const out = new BigInt64Array(total).fill(IGNORE_INDEX);
  let offset = 0;
  for (const a of arrays) {
    out.set(a, offset);
    offset += a.length;
  }
  return out;
}

/** Cuts `data` (rows of `rowSize` values) into consecutive copies of `sizes[i]` rows each. */
function cutRows(data: Float32Array, sizes: number[], rowSize: number): Float32Array[] {
  let offset = 0;
  return sizes.map((n) => {
    const piece = data.slice(offset * rowSize, (offset + n) * rowSize);
    offset += n;
    return piece;
  });
}

function checkPadding(samples: number, paddedSize: number): void {
  if (!Number.isInteger(paddedSize) || paddedSize < samples)
    throw new Error(`cannot pad a batch of ${samples} samples to ${paddedSize}`);
}

export function forwardBackwardKernel(shape: LlmShape): BatchKernel<ForwardBackwardRequest, ForwardBackwardResult> {
  const { contextLength: t, dModel: d } = shape;
  return {
    validate(req) {
      checkCommon(req.batch, req.inputsEmbeds, req.targets, shape);
      if (!(req.lossWeights instanceof Float32Array)) throw new Error('lossWeights must be a Float32Array');
      if (req.lossWeights.length !== req.batch)
        throw new Error(`lossWeights has ${req.lossWeights.length} values, expected batch = ${req.batch}`);
    },
    size: (req) => req.batch,
    slice: (req, start, end) => ({
      batch: end - start,
      inputsEmbeds: req.inputsEmbeds.subarray(start * t * d, end * t * d),
      targets: req.targets.subarray(start * t, end * t),
      lossWeights: req.lossWeights.subarray(start, end),
    }),
    concat(parts, paddedSize) {
      const samples = parts.reduce((n, p) => n + p.batch, 0);
      checkPadding(samples, paddedSize);
      return {
        batch: paddedSize,
        inputsEmbeds: concatFloat(
          parts.map((p) => p.inputsEmbeds),
          paddedSize * t * d,
        ),
        targets: concatTargets(
          parts.map((p) => p.targets),
          paddedSize * t,
        ),
        lossWeights: concatFloat(
          parts.map((p) => p.lossWeights),
          paddedSize,
        ),
      };
    },
    split(result, parts) {
      const sizes = parts.map((p) => p.batch);
      const losses = cutRows(result.sampleLoss, sizes, 1);
      const grads = cutRows(result.gradInputsEmbeds, sizes, t * d);
      return sizes.map((_, i) => ({ sampleLoss: losses[i]!, gradInputsEmbeds: grads[i]! }));
    },
    merge: (chunks) => ({
      sampleLoss: concatFloat(chunks.map((c) => c.sampleLoss)),
      gradInputsEmbeds: concatFloat(chunks.map((c) => c.gradInputsEmbeds)),
    }),
  };
}

export function scoreKernel(shape: LlmShape): BatchKernel<ScoreRequest, ScoreResult> {
  const { contextLength: t, dModel: d, vocabSize: v } = shape;
  return {
    validate(req) {
      checkCommon(req.batch, req.inputsEmbeds, req.targets, shape);
      if (!Array.isArray(req.positions) || req.positions.length !== req.batch)
        throw new Error(`positions has ${req.positions?.length} values, expected batch = ${req.batch}`);
      req.positions.forEach((p, i) => {
        if (!Number.isInteger(p) || p < 0 || p >= t)
          throw new Error(`position ${p} of sample ${i} is outside 0..${t - 1}`);
      });
    },
    size: (req) => req.batch,
    slice: (req, start, end) => ({
      batch: end - start,
      inputsEmbeds: req.inputsEmbeds.subarray(start * t * d, end * t * d),
      targets: req.targets.subarray(start * t, end * t),
      positions: req.positions.slice(start, end),
    }),
    concat(parts, paddedSize) {
      const samples = parts.reduce((n, p) => n + p.batch, 0);
      checkPadding(samples, paddedSize);
      const positions = parts.flatMap((p) => p.positions);
      while (positions.length < paddedSize) positions.push(0); // padding rows: any valid position
      return {
        batch: paddedSize,
        inputsEmbeds: concatFloat(
          parts.map((p) => p.inputsEmbeds),
          paddedSize * t * d,
        ),
        targets: concatTargets(
          parts.map((p) => p.targets),
          paddedSize * t,
        ),
        positions,
      };
    },
    split(result, parts) {
      const sizes = parts.map((p) => p.batch);
      const losses = cutRows(result.sampleLoss, sizes, 1);
      const logits = cutRows(result.logits, sizes, v);
      return sizes.map((_, i) => ({ sampleLoss: losses[i]!, logits: logits[i]! }));
    },
    merge: (chunks) => ({
      sampleLoss: concatFloat(chunks.map((c) => c.sampleLoss)),
      logits: concatFloat(chunks.map((c) => c.logits)),
    }),
  };
}

// ---- label-private mode --------------------------------------------------------------------------------------------
// Requests carry K answer slots per sample, and K differs between clients. A batch uses the largest K of its parts;
// a part's shorter rows are padded with unused slots (-1), which select an all-zero state in the graph, so their
// logits are 0 and their logits_grad is ignored. Padding samples have zero embeddings and only unused slots.

/** Positions [b, k] of each part, re-laid to `answers` slots per sample and `paddedSize` samples, -1 elsewhere. */
function concatPositions(parts: ForwardLogitsRequest[], answers: number, paddedSize: number): BigInt64Array {
  const out = new BigInt64Array(paddedSize * answers).fill(-1n);
  let sample = 0;
  for (const p of parts)
    for (let i = 0; i < p.batch; i++, sample++)
      out.set(p.positions.subarray(i * p.answers, (i + 1) * p.answers), sample * answers);
  return out;
}

/** Like concatPositions for [b, k, v] per-slot rows (logits_grad): zeros in padded slots and samples. */
function concatSlotRows(
  parts: { batch: number; answers: number; rows: Float32Array }[],
  answers: number,
  paddedSize: number,
  v: number,
): Float32Array {
  const out = new Float32Array(paddedSize * answers * v);
  let sample = 0;
  for (const p of parts)
    for (let i = 0; i < p.batch; i++, sample++)
      out.set(p.rows.subarray(i * p.answers * v, (i + 1) * p.answers * v), sample * answers * v);
  return out;
}

function logitsCommon(shape: LlmShape) {
  const { contextLength: t, dModel: d } = shape;
  return {
    size: (req: ForwardLogitsRequest) => req.batch,
    slice: (req: ForwardLogitsRequest, start: number, end: number): ForwardLogitsRequest => ({
      batch: end - start,
      answers: req.answers,
      inputsEmbeds: req.inputsEmbeds.subarray(start * t * d, end * t * d),
      positions: req.positions.subarray(start * req.answers, end * req.answers),
    }),
    concat(parts: ForwardLogitsRequest[], paddedSize: number): ForwardLogitsRequest {
      const samples = parts.reduce((n, p) => n + p.batch, 0);
      checkPadding(samples, paddedSize);
      const answers = Math.max(...parts.map((p) => p.answers));
      return {
        batch: paddedSize,
        answers,
        inputsEmbeds: concatFloat(
          parts.map((p) => p.inputsEmbeds),
          paddedSize * t * d,
        ),
        positions: concatPositions(parts, answers, paddedSize),
      };
    },
  };
}

export function forwardLogitsKernel(shape: LlmShape): BatchKernel<ForwardLogitsRequest, ForwardLogitsResult> {
  const v = shape.vocabSize;
  const common = logitsCommon(shape);
  return {
    validate: (req) => checkLogitsRequest(req, shape),
    ...common,
    split(result, parts) {
      // The batch's K is the largest part's; each part gets back exactly its own K slots per sample.
      const answers = Math.max(...parts.map((p) => p.answers));
      let sample = 0;
      return parts.map((p) => {
        const logits = new Float32Array(p.batch * p.answers * v);
        for (let i = 0; i < p.batch; i++, sample++)
          logits.set(
            result.logits.subarray(sample * answers * v, (sample * answers + p.answers) * v),
            i * p.answers * v,
          );
        return { logits };
      });
    },
    merge: (chunks) => ({ logits: concatFloat(chunks.map((c) => c.logits)) }),
  };
}

export function backwardLogitsKernel(shape: LlmShape): BatchKernel<BackwardLogitsRequest, BackwardLogitsResult> {
  const { contextLength: t, dModel: d, vocabSize: v } = shape;
  const common = logitsCommon(shape);
  return {
    validate: (req) => checkLogitsRequest(req, shape),
    size: common.size,
    slice: (req, start, end) => ({
      ...common.slice(req, start, end),
      logitsGrad: req.logitsGrad.subarray(start * req.answers * v, end * req.answers * v),
    }),
    concat(parts, paddedSize) {
      const joined = common.concat(parts, paddedSize);
      const rows = parts.map((p) => ({ batch: p.batch, answers: p.answers, rows: p.logitsGrad }));
      return { ...joined, logitsGrad: concatSlotRows(rows, joined.answers, paddedSize, v) };
    },
    split(result, parts) {
      const grads = cutRows(
        result.gradInputsEmbeds,
        parts.map((p) => p.batch),
        t * d,
      );
      return grads.map((gradInputsEmbeds) => ({ gradInputsEmbeds }));
    },
    merge: (chunks) => ({ gradInputsEmbeds: concatFloat(chunks.map((c) => c.gradInputsEmbeds)) }),
  };
}
