import { readFile } from 'node:fs/promises';
import { type AdapterConfig, type AdapterWeights, adapterShapes } from '@fednano/core';
import { loadModelFolder } from '@fednano/model';
import { HeldOutSet } from '@fednano/simulation';
import { connectNats, decodeAdapter, getAdapter, openStorage, readRound } from '@fednano/wire';
import type { Output } from '../output.js';
import { percent, UsageError } from '../output.js';
import { numberOption } from './shared.js';

/**
 * `fednano eval --adapter`: a saved global adapter scored on any shard, with the evaluation the aggregator runs after
 * each round (the same numbers for the same adapter and held-out shard). The adapter is a file in the Object Store's
 * format (`fednano-adapter/v1`, e.g. from `nats object get fednano-adapters <object>`), or with --nats the object
 * itself, verified against its round's record, which also gives its rank and alpha.
 */
export async function evaluateSavedAdapter(values: Record<string, unknown>, out: Output): Promise<void> {
  const source = String(values.adapter);
  if (values.shard === undefined)
    throw new UsageError('--adapter needs --shard DIR: the shard folder (shard.json + pixels) to score it on');
  const shard = String(values.shard);
  const modelPath = String(values.model);
  const { dModel } = (await loadModelFolder(modelPath)).manifest.config;
  const { adapter, weights } =
    values.nats === undefined
      ? await fromFile(source, dModel, values)
      : await fromObjectStore(source, dModel, String(values.nats), values['nats-creds'] as string | undefined);
  const set = await HeldOutSet.open(modelPath, shard);
  try {
    const r = await set.score(adapter, weights);
    const types = Object.entries(r.perType).sort(([a], [b]) => a.localeCompare(b));
    for (const [type, t] of types)
      out.record({ event: 'accuracy', type, examples: t.examples, accuracy: t.correct / t.examples });
    out.record({ event: 'summary', adapter: source, shard, examples: r.examples, accuracy: r.accuracy, loss: r.loss });
    out.table(
      ['question type', 'examples', 'accuracy'],
      types.map(([type, t]) => [type, t.examples, percent(t.correct / t.examples)]),
    );
    out.text(`overall ${percent(r.accuracy)} on ${r.examples} questions of ${shard} (adapter ${source})`);
  } finally {
    await set.close();
  }
}

/** An adapter file: its header gives the rank; alpha is not stored in it, so it is asked for. */
async function fromFile(
  path: string,
  dModel: number,
  values: Record<string, unknown>,
): Promise<{ adapter: AdapterConfig; weights: AdapterWeights }> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await readFile(path));
  } catch (e) {
    throw new Error(
      `cannot read the adapter file ${path}: ${(e as Error).message} (give a file, or --nats URL for an Object Store object)`,
    );
  }
  if (values.alpha === undefined)
    throw new UsageError(
      `--alpha is needed with an adapter file (the federation's spec.adapter.alpha; ${path} stores only the weights)`,
    );
  const alpha = numberOption(values, 'alpha', 0);
  const rank = rankInHeader(bytes, path);
  try {
    return { adapter: { rank, alpha }, weights: decodeAdapter(bytes, adapterShapes(dModel, rank)) };
  } catch (e) {
    throw new Error(`${path} is not an adapter for this model (d_model ${dModel}): ${(e as Error).message}`);
  }
}

function rankInHeader(bytes: Uint8Array, path: string): number {
  const nl = bytes.indexOf(10);
  try {
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(0, Math.max(nl, 0)))) as {
      tensors?: { name: string; shape: number[] }[];
    };
    const rank = header.tensors?.find((t) => t.name === 'image.A')?.shape[1];
    if (rank) return rank;
  } catch {
    // reported below
  }
  throw new Error(`${path} is not a fednano adapter file (no fednano-adapter/v1 header naming image.A)`);
}

/** An Object Store object `<namespace>/<federation>/round-<n>`, checked against round n's record. */
async function fromObjectStore(
  object: string,
  dModel: number,
  servers: string,
  credsFile: string | undefined,
): Promise<{ adapter: AdapterConfig; weights: AdapterWeights }> {
  const m = /^([a-z0-9-]+)\/([a-z0-9-]+)\/round-(\d+)$/.exec(object);
  if (!m)
    throw new UsageError(`--adapter '${object}' is not an adapter object name: <namespace>/<federation>/round-<n>`);
  const f = { namespace: m[1]!, federation: m[2]! };
  const nc = await connectNats({ servers, name: 'fednano-eval', credsFile });
  try {
    const { kv, objects } = await openStorage(nc);
    const doc = (await readRound(kv, f, Number(m[3])))?.doc;
    const result = doc?.status.result;
    if (!doc || result?.object !== object)
      throw new Error(
        `round ${m[3]} of ${f.namespace}/${f.federation} has no aggregated adapter ${object} on ${servers}`,
      );
    if (doc.spec.dModel !== dModel)
      throw new Error(`${object} is for d_model ${doc.spec.dModel}; the model folder has ${dModel}`);
    const weights = await getAdapter(objects, object, adapterShapes(dModel, doc.spec.adapter.rank), result.sha256);
    return { adapter: doc.spec.adapter, weights };
  } finally {
    await nc.drain();
  }
}
