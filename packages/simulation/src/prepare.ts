import type { Example } from '@fednano/core';
import { answerSet, type ImageSet, type VqaExample } from '@fednano/data';
import { imageTokenCount, int64Batch, pixelBatch, type ReferenceModel, vqaSequence } from '@fednano/model';

/**
 * Runs the frozen NanoEdge (encoder, connector, embedding table) once over a client's questions. Its outputs never
 * change during adaptation, so they are computed once and shared: image tokens per image, embeddings per distinct
 * text.
 */
export class NanoEdgeCache {
  private readonly images = new Map<string, Float32Array>();
  private readonly texts = new Map<string, Float32Array>();

  constructor(private readonly model: ReferenceModel) {}

  async examples(set: ImageSet, questions: readonly VqaExample[], batch = 64): Promise<Example[]> {
    const cfg = this.model.config;
    const n = imageTokenCount(cfg);
    const d = cfg.dModel;
    const tok = this.model.tokenizer;
    const missing = [...new Set(questions.map((q) => q.image))].filter((i) => !this.images.has(`${set.domain}:${i}`));
    for (let s = 0; s < missing.length; s += batch) {
      const chunk = missing.slice(s, s + batch);
      const tokens = (await this.model.imageTokens(pixelBatch(set, chunk, cfg))).data as Float32Array;
      chunk.forEach((img, k) => {
        this.images.set(`${set.domain}:${img}`, tokens.slice(k * n * d, (k + 1) * n * d));
      });
    }
    const seqs = questions.map((q) => vqaSequence(tok, cfg, q.question, q.answer));
    const newTexts = [...new Map(seqs.map((s) => [s.text.join(','), s.text])).entries()].filter(
      ([k]) => !this.texts.has(k),
    );
    for (let s = 0; s < newTexts.length; s += batch) {
      const chunk = newTexts.slice(s, s + batch);
      const embeds = (await this.model.embed(int64Batch(chunk.map(([, ids]) => ids)))).data as Float32Array;
      const per = (cfg.contextLength - n) * d;
      chunk.forEach(([key], k) => {
        this.texts.set(key, embeds.slice(k * per, (k + 1) * per));
      });
    }
    return questions.map((q, i) => {
      const s = seqs[i]!;
      return {
        image: this.images.get(`${set.domain}:${q.image}`)!,
        text: this.texts.get(s.text.join(','))!,
        targets: BigInt64Array.from(s.targets, BigInt),
        answerPosition: s.answerPosition,
        answerId: tok.requireId(q.answer),
        candidates: answerSet(q).map((a) => tok.requireId(a)),
        type: q.type,
      };
    });
  }
}
