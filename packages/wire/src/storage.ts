import { type AdapterWeights, adapterSha256 } from '@fednano/core';
import { jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { type ObjectStore, Objm } from '@nats-io/obj';
import { ADAPTERS_BUCKET, ROUNDS_BUCKET, UPDATES_STREAM, UPLOADS_BUCKET } from './names.js';

export interface FederationStorage {
  kv: KV;
  /** Global adapters, written by the aggregator only. */
  objects: ObjectStore;
  /** Oversized updates by reference, written by clients. */
  uploads: ObjectStore;
}

export interface StorageOptions {
  /** How long JetStream remembers message ids to drop duplicate publishes (default 1 h). */
  duplicateWindowMs?: number;
  /** How long updates are kept in the stream (default 7 days). */
  maxAgeMs?: number;
}

const ns = (ms: number) => ms * 1_000_000;

/**
 * Creates (or opens) the federation's storage: the FEDNANO_UPDATES stream (file storage, message-id
 * de-duplication), the `fednano-rounds` KV bucket, the `fednano-adapters` Object Store and the `fednano-uploads`
 * Object Store. Idempotent. With per-federation NATS accounts (nats-auth.ts) each account has its own set.
 */
export async function ensureStorage(nc: NatsConnection, o: StorageOptions = {}): Promise<FederationStorage> {
  const jsm = await jetstreamManager(nc);
  const config = {
    name: UPDATES_STREAM,
    subjects: ['fednano.*.*.round.*.update.*'],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    duplicate_window: ns(o.duplicateWindowMs ?? 3_600_000),
    max_age: ns(o.maxAgeMs ?? 7 * 86_400_000),
  };
  try {
    await jsm.streams.info(UPDATES_STREAM);
  } catch {
    try {
      await jsm.streams.add(config);
    } catch (e) {
      // Another process created it between our two calls.
      if (!/already in use|exists/i.test((e as Error).message)) throw e;
    }
  }
  const kv = await new Kvm(nc).create(ROUNDS_BUCKET, { history: 5, storage: StorageType.File });
  const objm = new Objm(nc);
  const objects = await objm.create(ADAPTERS_BUCKET, { storage: StorageType.File });
  const uploads = await objm.create(UPLOADS_BUCKET, { storage: StorageType.File });
  return { kv, objects, uploads };
}

/** Opens the buckets without creating anything (clients have no rights to create them). */
export async function openStorage(nc: NatsConnection): Promise<FederationStorage> {
  try {
    const objm = new Objm(nc);
    return {
      kv: await new Kvm(nc).open(ROUNDS_BUCKET),
      objects: await objm.open(ADAPTERS_BUCKET),
      uploads: await objm.open(UPLOADS_BUCKET),
    };
  } catch (e) {
    throw new Error(
      `NATS has no ${ROUNDS_BUCKET} KV bucket or ${ADAPTERS_BUCKET}/${UPLOADS_BUCKET} object store (${(e as Error).message}): start the aggregator, which creates them`,
    );
  }
}

// ---- adapters in the Object Store ---------------------------------------------------------------------------

const MAGIC = 'fednano-adapter/v1';

/** A self-describing adapter file: a JSON header line (tensor names and shapes), then little-endian float32s. */
export function encodeAdapter(weights: AdapterWeights, shapes: Record<string, readonly number[]>): Uint8Array {
  const names = Object.keys(shapes).sort();
  const header = new TextEncoder().encode(
    `${JSON.stringify({ format: MAGIC, tensors: names.map((n) => ({ name: n, shape: shapes[n] })) })}\n`,
  );
  const total = names.reduce((n, k) => n + weights.get(k)!.length, 0);
  const out = new Uint8Array(header.length + 4 * total);
  out.set(header);
  let at = header.length;
  for (const n of names) {
    const w = weights.get(n);
    if (!w) throw new Error(`adapter tensor '${n}' is missing`);
    out.set(new Uint8Array(w.buffer, w.byteOffset, w.byteLength), at);
    at += w.byteLength;
  }
  return out;
}

export function decodeAdapter(bytes: Uint8Array, shapes: Record<string, readonly number[]>): AdapterWeights {
  const nl = bytes.indexOf(10);
  if (nl < 0) throw new Error('adapter object has no header line');
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(0, nl))) as {
    format?: string;
    tensors?: { name: string; shape: number[] }[];
  };
  if (header.format !== MAGIC) throw new Error(`adapter object format is '${header.format}', expected '${MAGIC}'`);
  const out: AdapterWeights = new Map();
  let at = nl + 1;
  for (const t of header.tensors ?? []) {
    const want = shapes[t.name];
    if (!want || want.join('x') !== t.shape.join('x'))
      throw new Error(`adapter tensor '${t.name}' has shape [${t.shape}], expected [${want ?? 'none'}]`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (at + 4 * n > bytes.length) throw new Error(`adapter object is truncated at tensor '${t.name}'`);
    const values = new Float32Array(n); // an aligned copy (a Buffer's slice would share its pooled memory)
    new Uint8Array(values.buffer).set(bytes.subarray(at, at + 4 * n));
    out.set(t.name, values);
    at += 4 * n;
  }
  if (out.size !== Object.keys(shapes).length) throw new Error('adapter object lacks some tensors');
  return out;
}

/** Stores a global adapter; returns its content hash (the `baseAdapterSha256` updates are bound to). */
export async function putAdapter(
  objects: ObjectStore,
  name: string,
  weights: AdapterWeights,
  shapes: Record<string, readonly number[]>,
): Promise<string> {
  const sha256 = adapterSha256(weights, shapes);
  await objects.putBlob({ name, description: `sha256:${sha256}` }, encodeAdapter(weights, shapes));
  return sha256;
}

/** Fetches a global adapter and checks it is the one expected (transport digest and content hash). */
export async function getAdapter(
  objects: ObjectStore,
  name: string,
  shapes: Record<string, readonly number[]>,
  sha256: string,
): Promise<AdapterWeights> {
  const bytes = await objects.getBlob(name);
  if (!bytes) throw new Error(`adapter '${name}' is not in the ${ADAPTERS_BUCKET} object store`);
  const weights = decodeAdapter(bytes, shapes);
  const actual = adapterSha256(weights, shapes);
  if (actual !== sha256) throw new Error(`adapter '${name}' has sha256 ${actual}, expected ${sha256}`);
  return weights;
}
