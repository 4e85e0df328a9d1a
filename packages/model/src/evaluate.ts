import { answerSet, type ImageSet, type VqaExample } from '@fednano/data';
import type { Tensor } from '@fednano/onnx-graph';
import type { ModelConfig } from './config.js';
import { concatTokens, type ReferenceModel } from './runtime.js';
import { int64Batch, pixelBatch, vqaSequence } from './sequences.js';

export interface TypeAccuracy {
  type: string;
  examples: number;
  correct: number;
  accuracy: number;
  /** Accuracy of guessing uniformly among the closed-set answers. */
  chance: number;
}

export interface VqaReport {
  examples: number;
  accuracy: number;
  perType: TypeAccuracy[];
}

/** Hook to change the image tokens and text embeddings before the LM (e.g. apply NanoAdapters). */
export type EmbedTransform = (
  image: Tensor,
  text: Tensor,
) => Promise<{ image: Tensor; text: Tensor }> | { image: Tensor; text: Tensor };

/**
 * Closed-set VQA accuracy: the answer is the candidate with the highest log-likelihood at the answer position (all
 * answers are single tokens, so this is the LM's next-token distribution restricted to the candidates).
 */
export async function evaluateVqa(
  model: ReferenceModel,
  set: ImageSet,
  examples: readonly VqaExample[],
  options: { batch?: number; transform?: EmbedTransform } = {},
): Promise<VqaReport> {
  const cfg: ModelConfig = model.config;
  const tok = model.tokenizer;
  const batch = options.batch ?? 64;
  const stats = new Map<string, { examples: number; correct: number; candidates: number }>();
  const vocab = cfg.vocabSize;
  for (let start = 0; start < examples.length; start += batch) {
    const chunk = examples.slice(start, start + batch);
    const seqs = chunk.map((e) => vqaSequence(tok, cfg, e.question, e.answer));
    let image = await model.imageTokens(
      pixelBatch(
        set,
        chunk.map((e) => e.image),
        cfg,
      ),
    );
    let text = await model.embed(int64Batch(seqs.map((s) => s.text)));
    if (options.transform) ({ image, text } = await options.transform(image, text));
    const { logits } = await model.llm(concatTokens(cfg, image, text), int64Batch(seqs.map((s) => s.targets)));
    const data = logits.data as Float32Array;
    chunk.forEach((e, b) => {
      const answers = answerSet(e);
      const row = (b * cfg.contextLength + seqs[b]!.answerPosition) * vocab;
      let best = '';
      let bestLogit = Number.NEGATIVE_INFINITY;
      for (const a of answers) {
        const logit = data[row + tok.requireId(a)]!;
        if (logit > bestLogit) [best, bestLogit] = [a, logit];
      }
      const s = stats.get(e.type) ?? { examples: 0, correct: 0, candidates: answers.length };
      s.examples++;
      if (best === e.answer) s.correct++;
      stats.set(e.type, s);
    });
  }
  const perType = [...stats].map(([type, { candidates, ...s }]) => ({
    type,
    ...s,
    accuracy: s.correct / s.examples,
    chance: 1 / candidates,
  }));
  const correct = perType.reduce((n, t) => n + t.correct, 0);
  return { examples: examples.length, accuracy: examples.length ? correct / examples.length : 0, perType };
}
