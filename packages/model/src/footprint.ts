/**
 * Parameter counts from layer shapes, for the reference model and for published MLLMs, and what FedNano keeps on a
 * client (NanoEdge) and uploads per round (NanoAdapter updates, optionally with their Fisher diagonal).
 */

/** Parameters of one model split into the roles FedNano assigns. */
export interface ModelFootprint {
  name: string;
  /** Width of the LM's token embeddings (the NanoAdapters' d). */
  dModel: number;
  /** Transformer LM without its input embedding table (stays on the server). */
  llm: number;
  /** The LM's input token-embedding table (on the client, to embed text locally). */
  embeddings: number;
  /** Vision encoder (and any resampler such as a Q-Former). */
  visionEncoder: number;
  /** Connector / projector into the LM's embedding space. */
  connector: number;
}

// ---- layer-shape formulas -------------------------------------------------------------------------------

const linear = (i: number, o: number, bias = true) => i * o + (bias ? o : 0);
const layerNorm = (d: number) => 2 * d;

/** LLaMA-style decoder: RMSNorm (weight only), bias-free attention and SwiGLU MLP, untied LM head. */
function llamaDecoder(c: { vocab: number; d: number; layers: number; ffn: number }) {
  const perLayer = 4 * linear(c.d, c.d, false) + 3 * linear(c.d, c.ffn, false) + 2 * c.d;
  return { blocks: c.layers * perLayer + c.d /* final norm */, embeddings: c.vocab * c.d, head: c.vocab * c.d };
}

/** CLIP/EVA-style ViT: patch embedding, class token, positions, pre-norm blocks with GELU MLP. */
function vit(c: {
  d: number;
  layers: number;
  mlp: number;
  patch: number;
  image: number;
  patchBias: boolean;
  qkvBias: 'all' | 'qv';
  preNorm: boolean;
  postNorm: boolean;
}) {
  const positions = (c.image / c.patch) ** 2 + 1;
  const qkv = 3 * c.d * c.d + (c.qkvBias === 'all' ? 3 * c.d : 2 * c.d);
  const perLayer = qkv + linear(c.d, c.d) + 2 * layerNorm(c.d) + linear(c.d, c.mlp) + linear(c.mlp, c.d);
  return (
    3 * c.patch * c.patch * c.d +
    (c.patchBias ? c.d : 0) +
    c.d /* class token */ +
    positions * c.d +
    (c.preNorm ? layerNorm(c.d) : 0) +
    c.layers * perLayer +
    (c.postNorm ? layerNorm(c.d) : 0)
  );
}

/** BLIP-2 Q-Former as MiniGPT-4 uses it: BERT-base layers with query FFNs, cross-attention every other layer, text parts removed. */
function qFormer(c: {
  d: number;
  layers: number;
  ffn: number;
  encoderWidth: number;
  queries: number;
  crossEvery: number;
}) {
  const selfAttention = 4 * linear(c.d, c.d) + layerNorm(c.d);
  const queryFfn = linear(c.d, c.ffn) + linear(c.ffn, c.d) + layerNorm(c.d);
  const crossAttention = 2 * linear(c.d, c.d) + 2 * linear(c.encoderWidth, c.d) + layerNorm(c.d);
  const crossLayers = Math.ceil(c.layers / c.crossEvery);
  return c.layers * (selfAttention + queryFfn) + crossLayers * crossAttention + c.queries * c.d + layerNorm(c.d);
}

// ---- published configurations ----------------------------------------------------------------------------

const vicuna7b = llamaDecoder({ vocab: 32000, d: 4096, layers: 32, ffn: 11008 });

/** LLaVA-1.5-7B: Vicuna-7B + CLIP ViT-L/14 at 336 px + two-layer GELU MLP projector (1024 -> 4096 -> 4096). */
export const LLAVA_15_7B: ModelFootprint = {
  name: 'LLaVA-1.5-7B',
  dModel: 4096,
  llm: vicuna7b.blocks + vicuna7b.head,
  embeddings: vicuna7b.embeddings,
  visionEncoder: vit({
    d: 1024,
    layers: 24,
    mlp: 4096,
    patch: 14,
    image: 336,
    patchBias: false,
    qkvBias: 'all',
    preNorm: true,
    postNorm: true,
  }),
  connector: linear(1024, 4096) + linear(4096, 4096),
};

/**
 * MiniGPT-4 (Vicuna-7B): EVA-CLIP ViT-g/14 at 224 px with its last layer removed (39 of 40 layers, as BLIP-2 uses
 * it) plus a LayerNorm, the BLIP-2 Q-Former (32 queries), and one linear projection 768 -> 4096.
 */
export const MINIGPT4_7B: ModelFootprint = {
  name: 'MiniGPT-4 (Vicuna-7B)',
  dModel: 4096,
  llm: vicuna7b.blocks + vicuna7b.head,
  embeddings: vicuna7b.embeddings,
  visionEncoder:
    vit({
      d: 1408,
      layers: 39,
      mlp: 6144,
      patch: 14,
      image: 224,
      patchBias: true,
      qkvBias: 'qv',
      preNorm: false,
      postNorm: false,
    }) +
    layerNorm(1408) +
    qFormer({ d: 768, layers: 12, ffn: 3072, encoderWidth: 1408, queries: 32, crossEvery: 2 }),
  connector: linear(768, 4096),
};

// ---- what FedNano keeps and sends -----------------------------------------------------------------------------

/** Two NanoAdapters (image tokens and text tokens), each A: d x r and B: r x d. */
export const adapterParams = (dModel: number, rank: number): number => 2 * 2 * dModel * rank;

export interface FootprintRow {
  model: string;
  totalParams: number;
  serverParams: number;
  /** Encoder + connector + embeddings (+ adapters at the smallest rank reported separately). */
  nanoEdgeParams: number;
  /** 1 - NanoEdge / total. */
  storageReduction: number;
  /** The same, if the embedding table were not kept on the client. */
  storageReductionWithoutEmbeddings: number;
  uploads: { rank: number; adapterParams: number; percentOfTotal: number; withFisherPercent: number }[];
}

export function footprint(m: ModelFootprint, ranks: readonly number[] = [8, 16, 32, 64]): FootprintRow {
  const total = m.llm + m.embeddings + m.visionEncoder + m.connector;
  const edge = m.visionEncoder + m.connector + m.embeddings;
  return {
    model: m.name,
    totalParams: total,
    serverParams: m.llm,
    nanoEdgeParams: edge,
    storageReduction: 1 - edge / total,
    storageReductionWithoutEmbeddings: 1 - (edge - m.embeddings) / total,
    uploads: ranks.map((rank) => {
      const a = adapterParams(m.dModel, rank);
      return { rank, adapterParams: a, percentOfTotal: (100 * a) / total, withFisherPercent: (200 * a) / total };
    }),
  };
}
