import { EOS, type ImageSet, PAD, promptText, type Tokenizer, writeRgb } from '@fednano/data';
import { DType, type Tensor, tensor } from '@fednano/onnx-graph';
import { IGNORE_INDEX } from './architecture.js';
import { imageTokenCount, type ModelConfig, textLength } from './config.js';

/**
 * Token layouts of the LM's fixed-length sequences. Image-conditioned sequences are
 * [image tokens (N)] [text tokens (T - N)], and targets[p] is the token the LM should predict after position p.
 */
export interface TextSequence {
  /** T - N text token ids (padded). */
  text: number[];
  /** T targets, IGNORE_INDEX where nothing is predicted. */
  targets: number[];
}

function fit(ids: number[], length: number): number[] {
  return [...ids.slice(0, length), ...new Array(Math.max(0, length - ids.length)).fill(PAD)];
}

/** A caption after the image: predict each caption token and then end-of-sequence. */
export function captionSequence(tok: Tokenizer, cfg: ModelConfig, caption: string): TextSequence {
  const n = imageTokenCount(cfg);
  const words = [...tok.encode(caption).slice(0, textLength(cfg) - 1), EOS];
  const targets = new Array(cfg.contextLength).fill(IGNORE_INDEX);
  // The last image position predicts the first word; text position k predicts word k + 1.
  words.forEach((w, k) => {
    targets[n - 1 + k] = w;
  });
  return { text: fit(words, textLength(cfg)), targets };
}

/** A question after the image, in the prompt format; only the answer token is a target. */
export function vqaSequence(
  tok: Tokenizer,
  cfg: ModelConfig,
  question: string,
  answer: string,
): TextSequence & { answerPosition: number } {
  const n = imageTokenCount(cfg);
  const prompt = tok.encode(promptText(question));
  if (prompt.length + 1 > textLength(cfg))
    throw new Error(`question '${question}' is too long for ${textLength(cfg)} text positions`);
  const answerPosition = n + prompt.length - 1;
  const targets = new Array(cfg.contextLength).fill(IGNORE_INDEX);
  targets[answerPosition] = tok.requireId(answer);
  return { text: fit([...prompt, tok.requireId(answer)], textLength(cfg)), targets, answerPosition };
}

/** Text-only LM sequence from T + 1 consecutive tokens: inputs are the first T, targets the last T. */
export function shifted(ids: number[], cfg: ModelConfig): { tokens: number[]; targets: number[] } {
  if (ids.length !== cfg.contextLength + 1) throw new Error(`need ${cfg.contextLength + 1} tokens, got ${ids.length}`);
  return { tokens: ids.slice(0, -1), targets: ids.slice(1) };
}

/** Pixels of images from any sets as a float tensor [B, 3, H, W] in [0, 1]. */
export function mixedPixelBatch(items: readonly { set: ImageSet; image: number }[], cfg: ModelConfig): Tensor {
  const plane = cfg.channels * cfg.imageSize * cfg.imageSize;
  const out = new Float32Array(items.length * plane);
  items.forEach(({ set, image }, b) => {
    writeRgb(set, image, out, b * plane);
  });
  return { dtype: DType.FLOAT, dims: [items.length, cfg.channels, cfg.imageSize, cfg.imageSize], data: out };
}

/** Pixels of images from one set as a float tensor [B, 3, H, W]. */
export const pixelBatch = (set: ImageSet, images: readonly number[], cfg: ModelConfig): Tensor =>
  mixedPixelBatch(
    images.map((image) => ({ set, image })),
    cfg,
  );

export const int64Batch = (rows: number[][]): Tensor =>
  tensor(DType.INT64, [rows.length, rows[0]?.length ?? 0], rows.flat());
