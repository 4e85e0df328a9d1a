import { DType, Graph, Layers, seededInit, type Tensor, tensor } from '@fednano/onnx-graph';
import { imageTokenCount, type ModelConfig, validateConfig } from './config.js';

/**
 * The reference model as ONNX graphs. Parameters are named by part (`encoder.*`, `connector.*`, `embed.weight`,
 * `llm.*`) and drawn from one weight map, so the same weights build the separate part graphs a client and the
 * llm-host load, and the joint graphs that pretraining differentiates.
 */
export type Weights = Map<string, Tensor>;

export const IGNORE_INDEX = -100;
const BATCH = 'batch';

/** Seeded initialisation, shared by all parts so a given seed always gives the same initial model. */
const initFor = (seed: number) => seededInit(seed, DType.FLOAT);

/** pixels [B, C, H, W] in [0, 1] -> patch features [B, N, d]: a ViT with bidirectional attention. */
export function encoder(layers: Layers, cfg: ModelConfig, pixels: string): string {
  const { g, ops } = layers;
  const p = cfg.patchSize;
  const grid = cfg.imageSize / p;
  const patchDim = cfg.channels * p * p;
  const d = cfg.dModel;
  // [B, C, grid, p, grid, p] -> [B, grid, grid, C, p, p] -> [B, N, C*p*p]
  const tiled = ops.transpose(ops.reshape(pixels, [0, cfg.channels, grid, p, grid, p]), [0, 2, 4, 1, 3, 5]);
  const patches = ops.reshape(tiled, [0, grid * grid, patchDim]);
  const n = grid * grid;
  const pos = layers.param('encoder.pos.weight', [n, d], () => layers.init.normal([n, d], cfg.initStd));
  let x = ops.add(layers.linear(patches, 'encoder.patch', patchDim, d, cfg.initStd), pos);
  const noMask = g.constant(tensor(DType.FLOAT, [n, n]), 'no_mask');
  const block = { dModel: d, heads: cfg.encoder.heads, mlpRatio: cfg.encoder.mlpRatio, initStd: cfg.initStd };
  for (let i = 0; i < cfg.encoder.layers; i++) x = layers.decoderBlock(x, `encoder.blocks.${i}`, block, noMask);
  return layers.layerNorm(x, 'encoder.norm', d);
}

/** Patch features -> image tokens in the LM's embedding space (a two-layer GELU MLP, as in LLaVA-1.5). */
export function connector(layers: Layers, cfg: ModelConfig, features: string): string {
  const h = layers.linear(features, 'connector.fc1', cfg.dModel, cfg.connectorHidden, cfg.initStd);
  return layers.linear(layers.gelu(h, 'tanh'), 'connector.fc2', cfg.connectorHidden, cfg.dModel, cfg.initStd);
}

/** Token ids -> embeddings (the LM's embedding table, which stays on the client in FedNano). */
export function embedding(layers: Layers, cfg: ModelConfig, tokens: string): string {
  const dims = [cfg.vocabSize, cfg.dModel];
  const table = layers.param('embed.weight', dims, () => layers.init.normal(dims, cfg.initStd));
  return layers.g.op('Gather', [table, tokens]);
}

export interface LlmOutputs {
  logits: string;
  /** [B]: summed next-token NLL over each sample's target positions. */
  sampleLoss?: string;
  /** []: mean NLL per target token over the batch. */
  meanLoss?: string;
}

/** inputs_embeds [B, T, d] -> the final (normalised) hidden states [B, T, d], which the LM head turns into logits. */
function llmHidden(layers: Layers, cfg: ModelConfig, inputsEmbeds: string): string {
  const { ops } = layers;
  const d = cfg.dModel;
  const t = cfg.contextLength;
  const pos = layers.param('llm.pos.weight', [t, d], () => layers.init.normal([t, d], cfg.initStd));
  let x = ops.add(inputsEmbeds, pos);
  const mask = layers.causalMask(x);
  const block = { dModel: d, heads: cfg.llm.heads, mlpRatio: cfg.llm.mlpRatio, initStd: cfg.initStd };
  for (let i = 0; i < cfg.llm.layers; i++) x = layers.decoderBlock(x, `llm.blocks.${i}`, block, mask);
  return layers.layerNorm(x, 'llm.norm', d);
}

const llmHead = (layers: Layers, cfg: ModelConfig, hidden: string): string =>
  layers.linear(hidden, 'llm.head', cfg.dModel, cfg.vocabSize, cfg.initStd, false);

/** inputs_embeds [B, T, d] -> logits [B, T, V]; with targets [B, T] (-100 = none), per-sample and mean losses. */
export function llm(layers: Layers, cfg: ModelConfig, inputsEmbeds: string, targets?: string): LlmOutputs {
  const { g, ops } = layers;
  const logits = llmHead(layers, cfg, llmHidden(layers, cfg, inputsEmbeds));
  if (!targets) return { logits };
  const scores = ops.transpose(logits, [0, 2, 1]);
  const nll = g.op('SoftmaxCrossEntropyLoss', [scores, targets], { reduction: 'none', ignore_index: IGNORE_INDEX });
  const sampleLoss = ops.reduce('ReduceSum', nll, [1], false);
  const counted = ops.cast(
    g.op('Not', [g.op('Equal', [targets, g.constant(tensor(DType.INT64, [], [IGNORE_INDEX]))])]),
    DType.FLOAT,
  );
  const tokens = g.op('Max', [ops.reduce('ReduceSum', counted, [], false), ops.scalarLike(1, counted)]);
  const meanLoss = ops.div(ops.reduce('ReduceSum', sampleLoss, [], false), tokens);
  return { logits, sampleLoss, meanLoss };
}

// ---- part graphs (what the model folder holds) ---------------------------------------------------------

export interface PartGraph {
  graph: Graph;
  /** Parameter names used by this part. */
  params: string[];
}

function part(name: string, weights: Weights, seed: number, build: (layers: Layers, g: Graph) => void): PartGraph {
  const g = new Graph({ name });
  const layers = new Layers(g, initFor(seed), weights);
  build(layers, g);
  return { graph: g, params: layers.params };
}

export function encoderGraph(cfg: ModelConfig, weights: Weights, seed = 0): PartGraph {
  validateConfig(cfg);
  return part('encoder', weights, seed + 1, (layers, g) => {
    const pixels = g.input('pixels', DType.FLOAT, [BATCH, cfg.channels, cfg.imageSize, cfg.imageSize]);
    g.output(g.op('Identity', [encoder(layers, cfg, pixels)], {}, { outputs: ['features'] }));
  });
}

export function connectorGraph(cfg: ModelConfig, weights: Weights, seed = 0): PartGraph {
  return part('connector', weights, seed + 2, (layers, g) => {
    const features = g.input('features', DType.FLOAT, [BATCH, imageTokenCount(cfg), cfg.dModel]);
    g.output(g.op('Identity', [connector(layers, cfg, features)], {}, { outputs: ['image_tokens'] }));
  });
}

export function embeddingGraph(cfg: ModelConfig, weights: Weights, seed = 0): PartGraph {
  return part('embeddings', weights, seed + 3, (layers, g) => {
    const tokens = g.input('tokens', DType.INT64, [BATCH, 'length']);
    g.output(g.op('Identity', [embedding(layers, cfg, tokens)], {}, { outputs: ['embeds'] }));
  });
}

/** The frozen LM as the llm-host serves it: logits and per-sample losses from inputs_embeds and targets. */
export function llmGraph(
  cfg: ModelConfig,
  weights: Weights,
  seed = 0,
  outputs: ('logits' | 'sample_loss')[] = ['logits', 'sample_loss'],
): PartGraph {
  return part('llm', weights, seed + 4, (layers, g) => {
    const embeds = g.input('inputs_embeds', DType.FLOAT, [BATCH, cfg.contextLength, cfg.dModel]);
    const targets = g.input('targets', DType.INT64, [BATCH, cfg.contextLength]);
    const out = llm(layers, cfg, embeds, targets);
    if (outputs.includes('logits')) g.output(g.op('Identity', [out.logits], {}, { outputs: ['logits'] }));
    if (outputs.includes('sample_loss'))
      g.output(g.op('Identity', [out.sampleLoss!], {}, { outputs: ['sample_loss'] }));
  });
}

/**
 * Label-private split training: the LM's logits only at the given positions, so the host never needs the targets.
 * inputs_embeds [B, T, d], positions [B, K] int64 (-1 = padding) -> answer_logits [B, K, V]. The head runs only on the
 * K selected hidden states (a row gather on the flattened states). Each sample gets an extra all-zero row T that
 * padding slots select, so their logits are exactly 0 and no gradient flows from them. Built from the same weights as
 * llmGraph, so its logits equal llm.onnx's at those positions.
 */
export function llmAnswerLogitsGraph(cfg: ModelConfig, weights: Weights, seed = 0): PartGraph {
  return part('llm_answer_logits', weights, seed + 4, (layers, g) => {
    const { ops } = layers;
    const t = cfg.contextLength;
    const d = cfg.dModel;
    const embeds = g.input('inputs_embeds', DType.FLOAT, [BATCH, t, d]);
    const positions = g.input('positions', DType.INT64, [BATCH, 'answers']);
    const int = (v: number) => g.constant(tensor(DType.INT64, [], [v]));
    const hidden = llmHidden(layers, cfg, embeds);
    // [B, T + 1, d] with row T zero (made from a slice so that its batch size follows the input's), flattened.
    const zeroRow = ops.scale(g.op('Slice', [hidden, g.ints([0]), g.ints([1]), g.ints([1])]), 0);
    const states = ops.reshape(g.op('Concat', [hidden, zeroRow], { axis: 1 }), [-1, d]);
    // Sample b's position p is row b * (T + 1) + p; padding is row b * (T + 1) + T.
    const batch = g.op('Gather', [g.op('Shape', [positions]), int(0)]);
    const sampleRow = ops.mul(g.op('Range', [int(0), batch, int(1)]), int(t + 1));
    const within = g.op('Where', [g.op('GreaterOrEqual', [positions, int(0)]), positions, int(t)]);
    const selected = g.op('Gather', [states, ops.add(ops.unsqueeze(sampleRow, [1]), within)], { axis: 0 });
    g.output(g.op('Identity', [llmHead(layers, cfg, selected)], {}, { outputs: ['answer_logits'] }));
  });
}

// ---- joint graphs for pretraining -------------------------------------------------------------------------

export interface TrainingGraph extends PartGraph {
  loss: string;
}

/** Stage (a): text-only language modelling. tokens, targets: [B, T]. */
export function textLmGraph(cfg: ModelConfig, weights: Weights, seed = 0): TrainingGraph {
  let loss = '';
  const p = part('text_lm', weights, seed, (layers, g) => {
    const tokens = g.input('tokens', DType.INT64, [BATCH, cfg.contextLength]);
    const targets = g.input('targets', DType.INT64, [BATCH, cfg.contextLength]);
    loss = g.output(llm(layers, cfg, embedding(layers, cfg, tokens), targets).meanLoss!);
  });
  return { ...p, loss };
}

/** Stage (b) and VQA-shaped sequences: image tokens then text tokens. pixels, text [B, T - N], targets [B, T]. */
export function imageTextGraph(cfg: ModelConfig, weights: Weights, seed = 0): TrainingGraph {
  let loss = '';
  const p = part('image_text', weights, seed, (layers, g) => {
    const pixels = g.input('pixels', DType.FLOAT, [BATCH, cfg.channels, cfg.imageSize, cfg.imageSize]);
    const text = g.input('text', DType.INT64, [BATCH, cfg.contextLength - imageTokenCount(cfg)]);
    const targets = g.input('targets', DType.INT64, [BATCH, cfg.contextLength]);
    const image = connector(layers, cfg, encoder(layers, cfg, pixels));
    const embeds = g.op('Concat', [image, embedding(layers, cfg, text)], { axis: 1 });
    loss = g.output(llm(layers, cfg, embeds, targets).meanLoss!);
  });
  return { ...p, loss };
}

export const countParams = (weights: Weights, names: Iterable<string>): number =>
  [...names].reduce((n, name) => n + (weights.get(name)?.data.length ?? 0), 0);
