import {
  caption,
  DOMAINS,
  type DomainData,
  knowledgeSentences,
  loadDomain,
  packSentences,
  QUESTION_TYPES,
  rng,
  shuffle,
  Tokenizer,
  vqaExamples,
} from '@fednano/data';
import { type Feeds, type Graph, LocalSession } from '@fednano/onnx-graph';
import { imageTextGraph, type TrainingGraph, textLmGraph, type Weights } from './architecture.js';
import { type ModelConfig, REFERENCE_CONFIG } from './config.js';
import { evaluateVqa, type VqaReport } from './evaluate.js';
import { ReferenceModel } from './runtime.js';
import { captionSequence, int64Batch, mixedPixelBatch, shifted } from './sequences.js';
import { train } from './trainer.js';

/** The staged pretraining recipe; FULL_RECIPE builds the committed model, SMOKE_RECIPE checks the code path in CI. */
export interface Recipe {
  name: string;
  seed: number;
  batch: number;
  /** Stage (a): language modelling on text; trains the embeddings and the LM. */
  text: { steps: number; lr: number };
  /** Stage (b): caption alignment on pretraining images; trains the encoder and connector, the LM frozen. */
  caption: { steps: number; lr: number };
  vocabSize: number;
  /** Downstream test images per domain for the zero-shot evaluation. */
  zeroShotImages: number;
  threads: number;
}

export const FULL_RECIPE: Recipe = {
  name: 'full',
  seed: 0,
  batch: 32,
  text: { steps: 2000, lr: 2e-3 },
  caption: { steps: 4000, lr: 1e-3 },
  vocabSize: 1024,
  zeroShotImages: 300,
  threads: 2,
};

export const SMOKE_RECIPE: Recipe = {
  ...FULL_RECIPE,
  name: 'smoke',
  batch: 8,
  text: { steps: 12, lr: 2e-3 },
  caption: { steps: 12, lr: 1e-3 },
  zeroShotImages: 8,
};

export interface PretrainMetrics {
  text: { trainLoss: number; heldOutLoss: number; heldOutPerplexity: number; seconds: number; sentences: number };
  caption: { trainLoss: number; heldOutLoss: number; seconds: number; images: number };
  zeroShot: VqaReport;
}

export interface PretrainResult {
  config: ModelConfig;
  tokenizer: Tokenizer;
  weights: Weights;
  metrics: PretrainMetrics;
}

export type Log = (message: string) => void;

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const tail = (xs: number[]) => mean(xs.slice(-Math.max(1, Math.floor(xs.length / 10))));

/** Runs the whole recipe: data, tokenizer, stage (a), stage (b), zero-shot evaluation. Deterministic given the seed. */
export async function pretrain(recipe: Recipe, log: Log = () => {}): Promise<PretrainResult> {
  const random = rng(recipe.seed);
  const domains = new Map<string, DomainData>();
  for (const d of DOMAINS) domains.set(d, await loadDomain(d, recipe.seed));

  // Pretraining images only; 5% of them held out to measure the caption loss.
  const captionPool: { domain: string; image: number }[][] = [];
  const heldOutImages: { domain: string; image: number }[] = [];
  for (const [domain, { splits }] of domains) {
    const images = shuffle([...splits.pretrain], random);
    const cut = Math.max(1, Math.floor(images.length * 0.05));
    heldOutImages.push(...images.slice(0, cut).map((image) => ({ domain, image })));
    captionPool.push(images.slice(cut).map((image) => ({ domain, image })));
  }
  const captionText = (x: { domain: string; image: number }) => caption(domains.get(x.domain)!.set, x.image);

  // Stage (a) text: descriptive sentences plus the distinct captions of the pretraining images.
  const emoji = domains.get('emoji')!;
  const emojiNames = emoji.splits.pretrain.map((i) => ({
    name: emoji.set.names![i]!,
    category: emoji.set.classNames[emoji.set.labels[i]!]!,
  }));
  const sentences = shuffle(
    [...new Set([...knowledgeSentences(emojiNames), ...captionPool.flat().map(captionText)])],
    random,
  );
  const heldOutSentences = sentences.splice(0, Math.floor(sentences.length * 0.1));
  const required = QUESTION_TYPES.flatMap((q) => [q.question, ...q.answers, 'question', 'answer', ':']);
  const tokenizer = Tokenizer.fromCorpus([...sentences, ...heldOutSentences], { maxSize: recipe.vocabSize, required });
  const config: ModelConfig = { ...REFERENCE_CONFIG, vocabSize: tokenizer.size };
  log(
    `tokenizer: ${tokenizer.size} tokens; ${sentences.length} training sentences, ${heldOutSentences.length} held out`,
  );

  const weights: Weights = new Map();
  const runStage = (
    model: TrainingGraph,
    trainable: string[],
    batch: () => Feeds,
    stage: { steps: number; lr: number },
  ) =>
    train({
      model,
      trainable,
      weights,
      batch,
      steps: stage.steps,
      lr: stage.lr,
      threads: recipe.threads,
      onLog: (i) =>
        log(
          `  step ${i.step}/${i.steps} loss ${i.loss.toFixed(4)} lr ${i.lr.toExponential(2)} (${i.seconds.toFixed(0)} s)`,
        ),
    });
  const t = config.contextLength;
  const encode = (s: string) => tokenizer.encode(s);
  const textModel = textLmGraph(config, weights, recipe.seed);
  const textParams = textModel.params.filter((p) => p === 'embed.weight' || p.startsWith('llm.'));
  const textBatch = (sents: string[], count: number, r: () => number): Feeds => {
    const rows = packSentences(sents, encode, t + 1, count, r).map((ids) => shifted(ids, config));
    return { tokens: int64Batch(rows.map((x) => x.tokens)), targets: int64Batch(rows.map((x) => x.targets)) };
  };
  log(`stage (a): language modelling, ${recipe.text.steps} steps of ${recipe.batch} x ${t} tokens`);
  let started = performance.now();
  const textLosses = await runStage(
    textModel,
    textParams,
    () => textBatch(sentences, recipe.batch, random),
    recipe.text,
  );
  const textSeconds = (performance.now() - started) / 1000;
  const heldOutText = await meanLoss(textLmGraph(config, weights).graph, textModel.loss, [
    textBatch(heldOutSentences, Math.max(recipe.batch, 64), rng(recipe.seed + 1)),
  ]);
  log(`  held-out text loss ${heldOutText.toFixed(4)}, perplexity ${Math.exp(heldOutText).toFixed(2)}`);

  // Stage (b): caption alignment. Domains are sampled evenly, then an image within the domain.
  const captionModel = imageTextGraph(config, weights, recipe.seed);
  const captionParams = captionModel.params.filter((p) => p.startsWith('encoder.') || p.startsWith('connector.'));
  const captionBatch = (items: { domain: string; image: number }[]): Feeds => {
    const rows = items.map((x) => captionSequence(tokenizer, config, captionText(x)));
    return {
      pixels: mixedPixelBatch(
        items.map((x) => ({ set: domains.get(x.domain)!.set, image: x.image })),
        config,
      ),
      text: int64Batch(rows.map((r) => r.text)),
      targets: int64Batch(rows.map((r) => r.targets)),
    };
  };
  const sampleItems = () =>
    Array.from({ length: recipe.batch }, () => {
      const pool = captionPool[Math.floor(random() * captionPool.length)]!;
      return pool[Math.floor(random() * pool.length)]!;
    });
  log(
    `stage (b): caption alignment, ${recipe.caption.steps} steps of ${recipe.batch} images (encoder + connector; LM frozen)`,
  );
  started = performance.now();
  const captionLosses = await runStage(captionModel, captionParams, () => captionBatch(sampleItems()), recipe.caption);
  const captionSeconds = (performance.now() - started) / 1000;
  const heldOutBatches: Feeds[] = [];
  for (let i = 0; i < heldOutImages.length; i += 64) heldOutBatches.push(captionBatch(heldOutImages.slice(i, i + 64)));
  const heldOutCaption = await meanLoss(imageTextGraph(config, weights).graph, captionModel.loss, heldOutBatches);
  log(`  held-out caption loss ${heldOutCaption.toFixed(4)} on ${heldOutImages.length} images`);

  // Zero-shot: the frozen model on downstream test questions, never seen in this format.
  const model = await ReferenceModel.fromWeights(config, tokenizer, weights);
  const reports: VqaReport[] = [];
  try {
    for (const [, d] of domains) {
      const images = shuffle([...d.splits.test], rng(recipe.seed + 2)).slice(0, recipe.zeroShotImages);
      reports.push(await evaluateVqa(model, d.set, vqaExamples(d.set, images)));
    }
  } finally {
    await model.close();
  }
  const zeroShot = mergeReports(reports);
  log(
    `zero-shot VQA accuracy ${(zeroShot.accuracy * 100).toFixed(1)}% on ${zeroShot.examples} downstream test questions`,
  );

  return {
    config,
    tokenizer,
    weights,
    metrics: {
      text: {
        trainLoss: tail(textLosses),
        heldOutLoss: heldOutText,
        heldOutPerplexity: Math.exp(heldOutText),
        seconds: textSeconds,
        sentences: sentences.length,
      },
      caption: {
        trainLoss: tail(captionLosses),
        heldOutLoss: heldOutCaption,
        seconds: captionSeconds,
        images: captionPool.flat().length,
      },
      zeroShot,
    },
  };
}

async function meanLoss(graph: Graph, loss: string, batches: Feeds[]): Promise<number> {
  const s = await LocalSession.create(graph);
  try {
    const losses: number[] = [];
    for (const b of batches) losses.push(Number((await s.run(b, [loss]))[loss]!.data[0]));
    return mean(losses);
  } finally {
    await s.close();
  }
}

export function mergeReports(reports: VqaReport[]): VqaReport {
  const perType = reports.flatMap((r) => r.perType);
  const examples = perType.reduce((n, t) => n + t.examples, 0);
  const correct = perType.reduce((n, t) => n + t.correct, 0);
  return { examples, accuracy: examples ? correct / examples : 0, perType };
}
