import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer, type TokenizerJson } from '@fednano/data';
import { decodeModel, dtypeName, encodeModel, type Graph, vjp } from '@fednano/onnx-graph';
import { connectorGraph, embeddingGraph, encoderGraph, llmGraph, type Weights } from './architecture.js';
import type { ModelConfig } from './config.js';
import type { PretrainMetrics, Recipe } from './pretrain.js';
import { type ModelParts, ReferenceModel } from './runtime.js';

/**
 * A model folder: one ONNX file per part, the tokenizer, and manifest.json with the config, the recipe that built it,
 * measured metrics, parameter counts, tensor signatures and the sha256 of every file.
 *
 *   encoder.onnx     pixels [B,3,28,28]          -> features [B,N,d]           (client: NanoEdge)
 *   connector.onnx   features [B,N,d]            -> image_tokens [B,N,d]       (client: NanoEdge)
 *   embeddings.onnx  tokens [B,L]                -> embeds [B,L,d]             (client: NanoEdge)
 *   llm.onnx         inputs_embeds, targets      -> logits, sample_loss        (llm-host, frozen)
 *   llm_vjp.onnx     inputs_embeds, targets, sample_loss_grad -> sample_loss, grad_inputs_embeds (llm-host)
 */
export const MANIFEST = 'manifest.json';
export const PART_FILES = {
  encoder: 'encoder.onnx',
  connector: 'connector.onnx',
  embeddings: 'embeddings.onnx',
  llm: 'llm.onnx',
  llm_vjp: 'llm_vjp.onnx',
} as const;
export type PartName = keyof typeof PART_FILES;

/** Initializers that are model parameters (the others are constants such as masks and shapes). */
const PARAM_NAME = /^(encoder|connector|embed|llm)\./;

interface Signature {
  name: string;
  dtype: string;
  shape: (number | string)[];
}

export interface PartEntry {
  file: string;
  sha256: string;
  bytes: number;
  params: number;
  inputs: Signature[];
  outputs: Signature[];
}

export interface Manifest {
  format: 'fednano-model';
  version: 1;
  name: string;
  config: ModelConfig;
  parts: Record<PartName, PartEntry>;
  tokenizer: { file: string; sha256: string; size: number };
  /** Parameters per role, counted from the files. */
  paramCounts: { encoder: number; connector: number; embeddings: number; llm: number; total: number };
  recipe: Recipe;
  metrics: PretrainMetrics;
  build: { node: string; seconds: number; command: string };
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const signature = (vs: Graph['inputs']): Signature[] =>
  vs.map((v) => ({ name: v.name, dtype: dtypeName(v.dtype).toLowerCase(), shape: [...v.shape] }));

/** The part graphs built from weights, including the llm-host's forward+VJP graph. */
export function partGraphs(config: ModelConfig, weights: Weights): Record<PartName, Graph> {
  const lossOnly = llmGraph(config, weights, 0, ['sample_loss']).graph;
  return {
    encoder: encoderGraph(config, weights).graph,
    connector: connectorGraph(config, weights).graph,
    embeddings: embeddingGraph(config, weights).graph,
    llm: llmGraph(config, weights).graph,
    llm_vjp: vjp(lossOnly, { of: 'sample_loss', wrt: ['inputs_embeds'] }).graph,
  };
}

export async function writeModelFolder(
  dir: string,
  model: { config: ModelConfig; tokenizer: Tokenizer; weights: Weights; recipe: Recipe; metrics: PretrainMetrics },
  build: { seconds: number; command: string },
): Promise<Manifest> {
  await mkdir(dir, { recursive: true });
  const graphs = partGraphs(model.config, model.weights);
  const parts = {} as Record<PartName, PartEntry>;
  for (const [name, graph] of Object.entries(graphs) as [PartName, Graph][]) {
    const bytes = encodeModel(graph, { docString: `FedNano reference model: ${name}` });
    await writeFile(join(dir, PART_FILES[name]), bytes);
    parts[name] = {
      file: PART_FILES[name],
      sha256: sha256(bytes),
      bytes: bytes.length,
      params: [...graph.initializers].filter(([k]) => PARAM_NAME.test(k)).reduce((n, [, t]) => n + t.data.length, 0),
      inputs: signature(graph.inputs),
      outputs: signature(graph.outputs),
    };
  }
  const tokBytes = new TextEncoder().encode(`${JSON.stringify(model.tokenizer.toJson())}\n`);
  await writeFile(join(dir, 'tokenizer.json'), tokBytes);
  const count = (prefix: string) =>
    [...model.weights].filter(([n]) => n.startsWith(prefix)).reduce((k, [, t]) => k + t.data.length, 0);
  const paramCounts = {
    encoder: count('encoder.'),
    connector: count('connector.'),
    embeddings: count('embed.'),
    llm: count('llm.'),
    total: 0,
  };
  paramCounts.total = paramCounts.encoder + paramCounts.connector + paramCounts.embeddings + paramCounts.llm;
  const manifest: Manifest = {
    format: 'fednano-model',
    version: 1,
    name: 'reference',
    config: model.config,
    parts,
    tokenizer: { file: 'tokenizer.json', sha256: sha256(tokBytes), size: model.tokenizer.size },
    paramCounts,
    recipe: model.recipe,
    metrics: model.metrics,
    build: { node: process.version, ...build },
  };
  await writeFile(join(dir, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/** Thrown when a model folder is missing, incomplete or altered; the message says which file and how to rebuild. */
export class ModelFolderError extends Error {
  override name = 'ModelFolderError';
}

export interface LoadedModelFolder {
  dir: string;
  manifest: Manifest;
  tokenizer: Tokenizer;
  /** ONNX bytes of each part, verified against the manifest. */
  files: Record<PartName, Uint8Array>;
}

/** Reads a model folder and verifies every file's sha256 against the manifest. */
export async function loadModelFolder(dir: string): Promise<LoadedModelFolder> {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as Manifest;
  } catch (e) {
    throw new ModelFolderError(
      `${join(dir, MANIFEST)}: cannot read the model manifest (${(e as Error).message}); build the model with 'npm run model:build'`,
    );
  }
  if (manifest.format !== 'fednano-model' || manifest.version !== 1)
    throw new ModelFolderError(
      `${dir}: not a FedNano model folder (format ${manifest.format}, version ${manifest.version})`,
    );
  const read = async (file: string, expected: string): Promise<Uint8Array> => {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(join(dir, file)));
    } catch {
      throw new ModelFolderError(`${join(dir, file)} is missing; rebuild the model with 'npm run model:build'`);
    }
    const actual = sha256(bytes);
    if (actual !== expected)
      throw new ModelFolderError(
        `${join(dir, file)}: sha256 ${actual} does not match the manifest (${expected}); the file was altered or is from another build`,
      );
    return bytes;
  };
  const files = {} as Record<PartName, Uint8Array>;
  for (const [name, entry] of Object.entries(manifest.parts) as [PartName, PartEntry][])
    files[name] = await read(entry.file, entry.sha256);
  const tokBytes = await read(manifest.tokenizer.file, manifest.tokenizer.sha256);
  const tokenizer = Tokenizer.fromJson(JSON.parse(new TextDecoder().decode(tokBytes)) as TokenizerJson);
  return { dir, manifest, tokenizer, files };
}

/** Loads the folder's parts into ONNX Runtime sessions for inference. */
export async function openModel(folder: LoadedModelFolder, threads = 2): Promise<ReferenceModel> {
  const parts: ModelParts = {
    encoder: folder.files.encoder,
    connector: folder.files.connector,
    embeddings: folder.files.embeddings,
    llm: folder.files.llm,
  };
  return ReferenceModel.create(folder.manifest.config, folder.tokenizer, parts, threads);
}

/** The trained weights, read back from the part graphs' initializers. */
export function weightsOf(folder: LoadedModelFolder): Weights {
  const weights: Weights = new Map();
  for (const name of ['encoder', 'connector', 'embeddings', 'llm'] as const)
    for (const [k, t] of decodeModel(folder.files[name]).initializers)
      if (/^(encoder|connector|embed|llm)\./.test(k)) weights.set(k, t);
  return weights;
}
