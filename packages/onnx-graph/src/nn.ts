import { DType } from './dtype.js';
import type { Graph } from './graph.js';
import { Ops } from './ops-helpers.js';
import { gaussian, rng, type Tensor, tensor } from './tensor.js';

/**
 * Transformer layers built from standard ONNX operators, with their weights as initializers named
 * `<prefix>.<param>`. Shared by the gradient checks, the benchmark and the reference model.
 */

export interface Init {
  dtype: DType;
  normal(dims: number[], std: number): Tensor;
  constant(dims: number[], value: number): Tensor;
}

/** Deterministic parameter initialisation from a seed. */
export function seededInit(seed: number, dtype: DType = DType.FLOAT): Init {
  const normal = gaussian(rng(seed));
  return {
    dtype,
    normal: (dims, std) => {
      const t = tensor(dtype, dims);
      for (let i = 0; i < t.data.length; i++) (t.data as Float32Array)[i] = normal() * std;
      return t;
    },
    constant: (dims, value) => tensor(dtype, dims, new Array(dims.reduce((a, b) => a * b, 1)).fill(value)),
  };
}

export interface LoraConfig {
  rank: number;
  alpha: number;
  /** Which linear layers (by parameter prefix) get LoRA. */
  applies(prefix: string): boolean;
}

export interface BlockConfig {
  dModel: number;
  heads: number;
  /** Hidden width of the MLP as a multiple of dModel (default 4). */
  mlpRatio?: number;
  /**
   * GELU form: 'none' (exact, Erf), 'tanh' (the ONNX Gelu op's tanh approximation; default), or 'tanh-decomposed'
   * (the same formula from Tanh/Mul/Add with exact float64 constants: ONNX Runtime's float64 Gelu uses float32
   * constants, about 1e-8 relative error, too coarse for float64 finite-difference checks).
   */
  gelu?: 'none' | 'tanh' | 'tanh-decomposed';
  epsilon?: number;
  /** Standard deviation of weight initialisation (default 0.02). */
  initStd?: number;
}

export class Layers {
  readonly ops: Ops;
  /** Names of the parameters created so far, in creation order. */
  readonly params: string[] = [];

  /**
   * @param weights Parameter values by name. A parameter found here is used as it is (e.g. trained weights);
   *   one that is missing is initialised and added, so the map ends up holding every parameter of the graph.
   */
  /** LoRA on chosen linear layers: W x + (alpha / r) B(A x), A: [in, r] ~ N(0, 1/in), B: [r, out] zero. */
  lora?: LoraConfig;
  /** Names of the LoRA parameters created so far. */
  readonly loraParams: string[] = [];

  constructor(
    readonly g: Graph,
    readonly init: Init,
    readonly weights = new Map<string, Tensor>(),
  ) {
    this.ops = new Ops(g);
  }

  private loraDelta(x: string, prefix: string, inDim: number, outDim: number, lora: LoraConfig): string {
    const r = lora.rank;
    const a = this.param(`${prefix}.lora_A`, [inDim, r], () => this.init.normal([inDim, r], 1 / Math.sqrt(inDim)));
    const b = this.param(`${prefix}.lora_B`, [r, outDim], () => this.init.constant([r, outDim], 0));
    this.loraParams.push(a, b);
    return this.ops.scale(this.ops.matmul(this.ops.matmul(x, a), b), lora.alpha / r);
  }

  param(name: string, dims: number[], initial: () => Tensor): string {
    let value = this.weights.get(name);
    if (value === undefined) {
      value = initial();
      this.weights.set(name, value);
    } else if (value.dims.length !== dims.length || value.dims.some((d, i) => d !== dims[i]))
      throw new Error(`weight '${name}' has shape [${value.dims}], the model needs [${dims}]`);
    this.params.push(name);
    return this.g.initializer(name, value);
  }

  /** x @ W (+ b), W: [in, out]. */
  linear(x: string, prefix: string, inDim: number, outDim: number, std: number, bias = true): string {
    const w = this.param(`${prefix}.weight`, [inDim, outDim], () => this.init.normal([inDim, outDim], std));
    let y = this.ops.matmul(x, w);
    if (this.lora?.applies(prefix)) y = this.ops.add(y, this.loraDelta(x, prefix, inDim, outDim, this.lora));
    if (!bias) return y;
    return this.ops.add(
      y,
      this.param(`${prefix}.bias`, [outDim], () => this.init.constant([outDim], 0)),
    );
  }

  layerNorm(x: string, prefix: string, dim: number, epsilon = 1e-5): string {
    const scale = this.param(`${prefix}.scale`, [dim], () => this.init.constant([dim], 1));
    const bias = this.param(`${prefix}.bias`, [dim], () => this.init.constant([dim], 0));
    return this.g.op('LayerNormalization', [x, scale, bias], { axis: -1, epsilon });
  }

  /**
   * Additive causal mask [T, T] for x: [B, T, D]: 0 on and below the diagonal, a large negative number above. With a
   * symbolic T the mask is sliced at run time from one built for `maxLength` positions.
   */
  causalMask(x: string, maxLength?: number): string {
    const { g } = this;
    const length = g.shapeOf(x)[1]!;
    const size = typeof length === 'number' ? length : maxLength;
    if (size === undefined)
      throw new Error(`sequence length '${length}' is symbolic: give maxLength for the causal mask`);
    const values = new Array<number>(size * size);
    for (let i = 0; i < size; i++) for (let j = 0; j < size; j++) values[i * size + j] = j > i ? -1e9 : 0;
    const full = g.constant(tensor(this.init.dtype, [size, size], values), 'causal_mask');
    if (typeof length === 'number') return full;
    const t = g.op('Shape', [x], { start: 1, end: 2 });
    return g.op('Slice', [full, g.ints([0, 0]), g.op('Concat', [t, t], { axis: 0 }), g.ints([0, 1])]);
  }

  /** Causal multi-head self-attention with a fused QKV projection. x: [B, T, D]. */
  causalSelfAttention(x: string, prefix: string, cfg: BlockConfig, mask: string): string {
    const { ops, g } = this;
    const d = cfg.dModel;
    const h = cfg.heads;
    if (d % h !== 0) throw new Error(`dModel ${d} is not divisible by heads ${h}`);
    const dh = d / h;
    const std = cfg.initStd ?? 0.02;
    const qkv = this.linear(x, `${prefix}.qkv`, d, 3 * d, std);
    const [q, k, v] = g.node('Split', [qkv, g.ints([d, d, d])], { axis: -1 }, { outputCount: 3 }) as [
      string,
      string,
      string,
    ];
    const heads = (t: string, perm: number[]) => ops.transpose(ops.reshape(t, [0, 0, h, dh]), perm);
    const qh = heads(q, [0, 2, 1, 3]); // [B, H, T, Dh]
    const kt = heads(k, [0, 2, 3, 1]); // [B, H, Dh, T]
    const vh = heads(v, [0, 2, 1, 3]); // [B, H, T, Dh]
    const scores = ops.add(ops.scale(ops.matmul(qh, kt), 1 / Math.sqrt(dh)), mask);
    const attn = g.op('Softmax', [scores], { axis: -1 });
    const merged = ops.reshape(ops.transpose(ops.matmul(attn, vh), [0, 2, 1, 3]), [0, 0, d]);
    return this.linear(merged, `${prefix}.out`, d, d, std);
  }

  mlp(x: string, prefix: string, cfg: BlockConfig): string {
    const d = cfg.dModel;
    const hidden = d * (cfg.mlpRatio ?? 4);
    const std = cfg.initStd ?? 0.02;
    const up = this.linear(x, `${prefix}.up`, d, hidden, std);
    const act = this.gelu(up, cfg.gelu ?? 'tanh');
    return this.linear(act, `${prefix}.down`, hidden, d, std);
  }

  gelu(x: string, form: NonNullable<BlockConfig['gelu']>): string {
    if (form !== 'tanh-decomposed') return this.g.op('Gelu', [x], { approximate: form });
    const { ops, g } = this;
    const cubic = ops.add(x, ops.scale(ops.mul(ops.mul(x, x), x), 0.044715));
    const t = g.op('Tanh', [ops.scale(cubic, Math.sqrt(2 / Math.PI))]);
    return ops.mul(ops.scale(x, 0.5), ops.add(ops.scalarLike(1, x), t));
  }

  /** Pre-norm decoder block: x + attn(ln1(x)), then + mlp(ln2(.)). x: [B, T, D]. */
  decoderBlock(x: string, prefix: string, cfg: BlockConfig, mask: string): string {
    const { ops } = this;
    const eps = cfg.epsilon ?? 1e-5;
    const h = ops.add(
      x,
      this.causalSelfAttention(this.layerNorm(x, `${prefix}.ln1`, cfg.dModel, eps), `${prefix}.attn`, cfg, mask),
    );
    return ops.add(h, this.mlp(this.layerNorm(h, `${prefix}.ln2`, cfg.dModel, eps), `${prefix}.mlp`, cfg));
  }
}

export interface LanguageModelConfig extends BlockConfig {
  vocabSize: number;
  layers: number;
  /** Sequence length (static) used for the position table and the causal mask. */
  seqLength: number;
}

export interface LanguageModelGraph {
  graph: Graph;
  /** [B, T] int64 token ids. */
  tokens: string;
  /** [B, T] int64 targets; -100 marks positions without a loss. */
  targets: string;
  logits: string;
  loss: string;
  /** Names of all trainable parameters (initializers). */
  params: string[];
}

/** Token embedding -> position embedding -> N decoder blocks -> final norm -> LM head -> cross-entropy. */
export function buildLanguageModel(
  g: Graph,
  cfg: LanguageModelConfig,
  init: Init,
  batch: number | string,
): LanguageModelGraph {
  const layers = new Layers(g, init);
  const { ops } = layers;
  const std = cfg.initStd ?? 0.02;
  const t = cfg.seqLength;
  const tokens = g.input('tokens', DType.INT64, [batch, t]);
  const targets = g.input('targets', DType.INT64, [batch, t]);
  const embed = layers.param('embed.weight', [cfg.vocabSize, cfg.dModel], () =>
    init.normal([cfg.vocabSize, cfg.dModel], std),
  );
  const pos = layers.param('pos.weight', [t, cfg.dModel], () => init.normal([t, cfg.dModel], std));
  let x = ops.add(g.op('Gather', [embed, tokens]), pos);
  const mask = layers.causalMask(x);
  for (let i = 0; i < cfg.layers; i++) x = layers.decoderBlock(x, `blocks.${i}`, cfg, mask);
  x = layers.layerNorm(x, 'final_norm', cfg.dModel, cfg.epsilon ?? 1e-5);
  const logits = layers.linear(x, 'lm_head', cfg.dModel, cfg.vocabSize, std, false);
  const scores = ops.transpose(logits, [0, 2, 1]); // [B, V, T] as SoftmaxCrossEntropyLoss wants classes on axis 1
  const loss = g.op('SoftmaxCrossEntropyLoss', [scores, targets], { ignore_index: -100, reduction: 'mean' });
  return { graph: g, tokens, targets, logits, loss, params: layers.params };
}
