/** Shape of the reference model: a miniature LLaVA (vision encoder -> connector -> decoder-only LM). */
export interface ModelConfig {
  imageSize: number;
  channels: number;
  /** Square patches; (imageSize / patchSize)^2 image tokens enter the LM. */
  patchSize: number;
  dModel: number;
  vocabSize: number;
  encoder: { layers: number; heads: number; mlpRatio: number };
  llm: { layers: number; heads: number; mlpRatio: number };
  connectorHidden: number;
  /** Sequence length of the LM: image tokens followed by text tokens. */
  contextLength: number;
  initStd: number;
}

export const REFERENCE_CONFIG: Omit<ModelConfig, 'vocabSize'> = {
  imageSize: 28,
  channels: 3,
  patchSize: 7,
  dModel: 128,
  encoder: { layers: 2, heads: 4, mlpRatio: 4 },
  llm: { layers: 4, heads: 4, mlpRatio: 4 },
  connectorHidden: 256,
  contextLength: 32,
  initStd: 0.02,
};

export const imageTokenCount = (c: ModelConfig): number => (c.imageSize / c.patchSize) ** 2;
/** Text positions after the image tokens. */
export const textLength = (c: ModelConfig): number => c.contextLength - imageTokenCount(c);

export function validateConfig(c: ModelConfig): void {
  const problems: string[] = [];
  if (c.imageSize % c.patchSize !== 0)
    problems.push(`imageSize ${c.imageSize} is not a multiple of patchSize ${c.patchSize}`);
  if (c.dModel % c.encoder.heads !== 0 || c.dModel % c.llm.heads !== 0)
    problems.push('dModel must divide by the head counts');
  if (textLength(c) < 8) problems.push(`contextLength ${c.contextLength} leaves fewer than 8 text positions`);
  if (problems.length) throw new Error(`invalid model config: ${problems.join('; ')}`);
}
