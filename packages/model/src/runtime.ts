import type { Tokenizer } from '@fednano/data';
import { DType, type Graph, LocalSession, type Tensor } from '@fednano/onnx-graph';
import { connectorGraph, embeddingGraph, encoderGraph, llmGraph, type Weights } from './architecture.js';
import { imageTokenCount, type ModelConfig } from './config.js';

/** The part models a caller runs: any source of ONNX bytes or graphs (a model folder, or weights in memory). */
export interface ModelParts {
  encoder: Graph | Uint8Array;
  connector: Graph | Uint8Array;
  embeddings: Graph | Uint8Array;
  llm: Graph | Uint8Array;
}

/** Inference over the reference model's parts: image tokens, text embeddings, and the LM on inputs_embeds. */
export class ReferenceModel {
  private constructor(
    readonly config: ModelConfig,
    readonly tokenizer: Tokenizer,
    private readonly sessions: Record<keyof ModelParts, LocalSession>,
  ) {}

  static async create(
    config: ModelConfig,
    tokenizer: Tokenizer,
    parts: ModelParts,
    threads = 2,
  ): Promise<ReferenceModel> {
    const open = (m: Graph | Uint8Array) => LocalSession.create(m, { intraOpThreads: threads });
    return new ReferenceModel(config, tokenizer, {
      encoder: await open(parts.encoder),
      connector: await open(parts.connector),
      embeddings: await open(parts.embeddings),
      llm: await open(parts.llm),
    });
  }

  /** Builds the part graphs from weights held in memory (e.g. right after pretraining). */
  static fromWeights(config: ModelConfig, tokenizer: Tokenizer, weights: Weights): Promise<ReferenceModel> {
    return ReferenceModel.create(config, tokenizer, {
      encoder: encoderGraph(config, weights).graph,
      connector: connectorGraph(config, weights).graph,
      embeddings: embeddingGraph(config, weights).graph,
      llm: llmGraph(config, weights).graph,
    });
  }

  /** pixels [B, C, H, W] -> image tokens [B, N, d]. */
  async imageTokens(pixels: Tensor): Promise<Tensor> {
    const { features } = await this.sessions.encoder.run({ pixels });
    return (await this.sessions.connector.run({ features: features! })).image_tokens!;
  }

  /** tokens [B, L] -> embeddings [B, L, d]. */
  async embed(tokens: Tensor): Promise<Tensor> {
    return (await this.sessions.embeddings.run({ tokens })).embeds!;
  }

  /** The frozen LM: inputs_embeds [B, T, d], targets [B, T] -> logits [B, T, V] and per-sample summed NLL [B]. */
  async llm(inputsEmbeds: Tensor, targets: Tensor): Promise<{ logits: Tensor; sampleLoss: Tensor }> {
    const r = await this.sessions.llm.run({ inputs_embeds: inputsEmbeds, targets });
    return { logits: r.logits!, sampleLoss: r.sample_loss! };
  }

  async close(): Promise<void> {
    for (const s of Object.values(this.sessions)) await s.close();
  }
}

/** Joins image tokens [B, N, d] and text embeddings [B, T - N, d] into inputs_embeds [B, T, d]. */
export function concatTokens(config: ModelConfig, image: Tensor, text: Tensor): Tensor {
  const b = image.dims[0]!;
  const d = config.dModel;
  const n = imageTokenCount(config);
  const t = config.contextLength;
  const out = new Float32Array(b * t * d);
  const img = image.data as Float32Array;
  const txt = text.data as Float32Array;
  for (let i = 0; i < b; i++) {
    out.set(img.subarray(i * n * d, (i + 1) * n * d), i * t * d);
    out.set(txt.subarray(i * (t - n) * d, (i + 1) * (t - n) * d), i * t * d + n * d);
  }
  return { dtype: DType.FLOAT, dims: [b, t, d], data: out };
}
