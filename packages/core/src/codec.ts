import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { type AdapterWeights, adapterShapes } from './adapters.js';
import { fromBfloat16, fromFloat16, toBfloat16, toFloat16 } from './float16.js';

/**
 * The adapter-update codec: AdapterUpdate messages (proto/fednano/v1/update.proto) inside a versioned envelope with
 * a sha256 of the update bytes. Decoding validates everything before anything reaches an aggregator, and every
 * rejection is an UpdateRejected with a machine-readable reason (counted in metrics) and a specific message.
 */
export const FORMAT_VERSION = 1;
export const DEFAULT_MAX_UPDATE_BYTES = 16 * 2 ** 20;

const PROTO_PATH = fileURLToPath(new URL('../../../proto/fednano/v1/update.proto', import.meta.url));
const root = protobuf.loadSync(PROTO_PATH);
const Envelope = root.lookupType('fednano.v1.UpdateEnvelope');
const Update = root.lookupType('fednano.v1.AdapterUpdate');

export type WireDType = 'float32' | 'float16' | 'bfloat16' | 'int8';
const DTYPE_CODE: Record<WireDType, number> = { float32: 1, float16: 2, bfloat16: 3, int8: 4 };
const CODE_DTYPE: Record<number, WireDType> = { 1: 'float32', 2: 'float16', 3: 'bfloat16', 4: 'int8' };
const DTYPE_BYTES: Record<WireDType, number> = { float32: 4, float16: 2, bfloat16: 2, int8: 1 };

export type RejectReason =
  | 'oversize'
  | 'malformed'
  | 'version'
  | 'checksum'
  | 'federation'
  | 'round'
  | 'client'
  | 'base'
  | 'samples'
  | 'tensors'
  | 'dtype'
  | 'size'
  | 'non-finite'
  | 'fisher'
  | 'rank';

export class UpdateRejected extends Error {
  override name = 'UpdateRejected';
  constructor(
    readonly reason: RejectReason,
    message: string,
  ) {
    super(`update rejected (${reason}): ${message}`);
  }
}

export interface UpdateMetrics {
  loss: number;
  steps: number;
  seconds: number;
  splitUpBytes: number;
  splitDownBytes: number;
}

export interface AdapterUpdate {
  namespace: string;
  federation: string;
  round: number;
  clientId: string;
  /** Hex sha256 of the global adapter the client trained from. */
  baseAdapterSha256: string;
  sampleCount: number;
  weights: AdapterWeights;
  fisher?: AdapterWeights;
  metrics?: UpdateMetrics;
  /** The rank the client trained (heterogeneous federations); absent: the federation's rank. */
  rank?: number;
}

/** sha256 over the tensors in name order (name, shape, float32 bytes): identifies a global adapter. */
export function adapterSha256(weights: AdapterWeights, shapes: Record<string, readonly number[]>): string {
  const h = createHash('sha256');
  for (const name of [...weights.keys()].sort()) {
    const t = weights.get(name)!;
    h.update(`${name}:${(shapes[name] ?? [t.length]).join('x')};`);
    h.update(new Uint8Array(t.buffer, t.byteOffset, t.byteLength));
  }
  return h.digest('hex');
}

// ---- encoding ---------------------------------------------------------------------------------------------------

function encodeTensor(name: string, shape: readonly number[], values: Float32Array, dtype: WireDType) {
  const n = values.length;
  let data: Uint8Array;
  let scale = 0;
  if (dtype === 'float32')
    data = new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  else if (dtype === 'int8') {
    let max = 0;
    for (const v of values) max = Math.max(max, Math.abs(v));
    scale = max > 0 ? max / 127 : 1;
    const q = new Int8Array(n);
    for (let i = 0; i < n; i++) q[i] = Math.max(-127, Math.min(127, Math.round(values[i]! / scale)));
    data = new Uint8Array(q.buffer);
  } else {
    const half = new Uint16Array(n);
    const convert = dtype === 'float16' ? toFloat16 : toBfloat16;
    for (let i = 0; i < n; i++) half[i] = convert(values[i]!);
    data = new Uint8Array(half.buffer);
  }
  return { name, shape: [...shape], dtype: DTYPE_CODE[dtype], data, scale };
}

export interface EncodeOptions {
  shapes: Record<string, readonly number[]>;
  dtype?: WireDType;
  /** Precision of the Fisher tensors (default: as the weights). */
  fisherDtype?: WireDType;
}

export function encodeUpdate(u: AdapterUpdate, options: EncodeOptions): Uint8Array {
  const dtype = options.dtype ?? 'float32';
  const tensors = (w: AdapterWeights, dt: WireDType) =>
    [...w.keys()].sort().map((name) => {
      const shape = options.shapes[name];
      if (!shape) throw new Error(`no shape known for tensor '${name}'`);
      return encodeTensor(name, shape, w.get(name)!, dt);
    });
  const update = Update.encode(
    Update.create({
      namespace: u.namespace,
      federation: u.federation,
      round: u.round,
      clientId: u.clientId,
      baseAdapterSha256: Buffer.from(u.baseAdapterSha256, 'hex'),
      sampleCount: u.sampleCount,
      tensors: tensors(u.weights, dtype),
      fisher: u.fisher ? tensors(u.fisher, options.fisherDtype ?? dtype) : [],
      metrics: u.metrics,
      adapterRank: u.rank ?? 0,
    }),
  ).finish();
  const envelope = Envelope.encode(
    Envelope.create({ formatVersion: FORMAT_VERSION, update, sha256: createHash('sha256').update(update).digest() }),
  ).finish();
  // protobufjs returns a Node Buffer whose slice() shares memory; hand out a plain, independent Uint8Array.
  return new Uint8Array(envelope);
}

// ---- decoding -------------------------------------------------------------------------------------------------

export interface Expectation {
  namespace: string;
  federation: string;
  round: number;
  /** Hex sha256 of the current global adapter. */
  baseAdapterSha256: string;
  /** The adapter's tensors and shapes: an update must have exactly these. */
  shapes: Record<string, readonly number[]>;
  requireFisher?: boolean;
  /** The authenticated sender; an update claiming another client id is rejected. */
  clientId?: string;
  maxBytes?: number;
  maxSamples?: number;
  /**
   * Heterogeneous ranks: the update declares its rank, which must be 1..max (and `expected`, the rank the roster
   * gives this client, when set); its tensors must then have the shapes of that rank instead of `shapes`.
   */
  rank?: { dModel: number; max: number; expected?: number };
}

const num = (v: unknown): number =>
  typeof v === 'number'
    ? v
    : typeof v === 'object' && v !== null && 'toNumber' in v
      ? (v as { toNumber(): number }).toNumber()
      : Number(v ?? 0);

interface WireTensor {
  name?: string;
  shape?: number[];
  dtype?: number;
  data?: Uint8Array;
  scale?: number;
}

function decodeTensors(list: WireTensor[], e: Expectation, what: 'tensors' | 'fisher'): AdapterWeights {
  const expected = Object.keys(e.shapes).sort();
  const names = list.map((t) => t.name ?? '');
  if (names.length !== expected.length || [...names].sort().some((n, i) => n !== expected[i]))
    throw new UpdateRejected('tensors', `${what} are [${names.join(', ')}], expected [${expected.join(', ')}]`);
  const out: AdapterWeights = new Map();
  for (const t of list) {
    const name = t.name!;
    const shape = (t.shape ?? []).map(num);
    const want = e.shapes[name]!;
    if (shape.length !== want.length || shape.some((d, i) => d !== want[i]))
      throw new UpdateRejected('tensors', `${what} '${name}' has shape [${shape}], expected [${want}]`);
    const dtype = CODE_DTYPE[t.dtype ?? 0];
    if (!dtype) throw new UpdateRejected('dtype', `${what} '${name}' has unknown element type ${t.dtype}`);
    const n = want.reduce((a, b) => a * b, 1);
    const data = t.data ?? new Uint8Array();
    if (data.length !== n * DTYPE_BYTES[dtype])
      throw new UpdateRejected(
        'size',
        `${what} '${name}' has ${data.length} data bytes, expected ${n * DTYPE_BYTES[dtype]} (${n} x ${dtype})`,
      );
    const bytes = new Uint8Array(data); // an aligned copy (Buffer.slice would share the pooled buffer)
    const values = new Float32Array(n);
    if (dtype === 'float32') values.set(new Float32Array(bytes.buffer, 0, n));
    else if (dtype === 'int8') {
      const scale = t.scale ?? 0;
      if (!Number.isFinite(scale) || scale <= 0)
        throw new UpdateRejected('non-finite', `${what} '${name}' has int8 scale ${scale}`);
      const q = new Int8Array(bytes.buffer, 0, n);
      for (let i = 0; i < n; i++) values[i] = q[i]! * scale;
    } else {
      const half = new Uint16Array(bytes.buffer, 0, n);
      const convert = dtype === 'float16' ? fromFloat16 : fromBfloat16;
      for (let i = 0; i < n; i++) values[i] = convert(half[i]!);
    }
    for (let i = 0; i < n; i++)
      if (!Number.isFinite(values[i]!))
        throw new UpdateRejected('non-finite', `${what} '${name}' has ${values[i]} at index ${i}`);
    if (what === 'fisher' && values.some((v) => v < 0))
      throw new UpdateRejected('fisher', `Fisher tensor '${name}' has negative entries`);
    out.set(name, values);
  }
  return out;
}

/** Decodes and validates an update against what the receiver expects this round. Throws UpdateRejected. */
export function decodeUpdate(bytes: Uint8Array, e: Expectation): AdapterUpdate {
  const max = e.maxBytes ?? DEFAULT_MAX_UPDATE_BYTES;
  if (bytes.length > max) throw new UpdateRejected('oversize', `${bytes.length} bytes exceeds the limit of ${max}`);
  let env: { formatVersion?: number; update?: Uint8Array; sha256?: Uint8Array };
  let u: Record<string, unknown>;
  try {
    env = Envelope.toObject(Envelope.decode(bytes)) as typeof env;
  } catch (err) {
    throw new UpdateRejected('malformed', `not an update envelope (${(err as Error).message})`);
  }
  if (env.formatVersion !== FORMAT_VERSION)
    throw new UpdateRejected(
      'version',
      `format version ${env.formatVersion ?? 0}, this receiver reads ${FORMAT_VERSION}`,
    );
  const payload = env.update ?? new Uint8Array();
  const digest = createHash('sha256').update(payload).digest();
  if (!env.sha256 || Buffer.compare(digest, Buffer.from(env.sha256)) !== 0)
    throw new UpdateRejected('checksum', 'sha256 of the update does not match the envelope');
  try {
    u = Update.toObject(Update.decode(payload), { defaults: true }) as Record<string, unknown>;
  } catch (err) {
    throw new UpdateRejected('malformed', `update does not decode (${(err as Error).message})`);
  }
  if (u.namespace !== e.namespace || u.federation !== e.federation)
    throw new UpdateRejected(
      'federation',
      `update is for ${u.namespace}/${u.federation}, this is ${e.namespace}/${e.federation}`,
    );
  const round = num(u.round);
  if (round !== e.round)
    throw new UpdateRejected('round', `update is for round ${round}, the current round is ${e.round}`);
  const clientId = String(u.clientId ?? '');
  if (!clientId) throw new UpdateRejected('client', 'update has no client id');
  if (e.clientId !== undefined && clientId !== e.clientId)
    throw new UpdateRejected('client', `update claims client '${clientId}' but was sent by '${e.clientId}'`);
  const base = Buffer.from((u.baseAdapterSha256 as Uint8Array) ?? []).toString('hex');
  if (base !== e.baseAdapterSha256)
    throw new UpdateRejected(
      'base',
      `update was trained from adapter ${base.slice(0, 12) || '(none)'}, the round's is ${e.baseAdapterSha256.slice(0, 12)}`,
    );
  const samples = num(u.sampleCount);
  if (!(samples >= 1 && samples <= (e.maxSamples ?? 1e9)))
    throw new UpdateRejected('samples', `sample count ${samples} is outside 1..${e.maxSamples ?? 1e9}`);
  const rank = declaredRank(num(u.adapterRank), e);
  const shaped: Expectation = rank === undefined ? e : { ...e, shapes: adapterShapes(e.rank!.dModel, rank) };
  const weights = decodeTensors((u.tensors as WireTensor[]) ?? [], shaped, 'tensors');
  const fisherList = (u.fisher as WireTensor[]) ?? [];
  if (e.requireFisher && fisherList.length === 0)
    throw new UpdateRejected('fisher', 'this round merges by Fisher and the update has no Fisher diagonal');
  const fisher = fisherList.length ? decodeTensors(fisherList, shaped, 'fisher') : undefined;
  const m = u.metrics as Record<string, unknown> | undefined;
  const metrics = m
    ? {
        loss: num(m.loss),
        steps: num(m.steps),
        seconds: num(m.seconds),
        splitUpBytes: num(m.splitUpBytes),
        splitDownBytes: num(m.splitDownBytes),
      }
    : undefined;
  return {
    namespace: e.namespace,
    federation: e.federation,
    round,
    clientId,
    baseAdapterSha256: base,
    sampleCount: samples,
    weights,
    fisher,
    metrics,
    ...(rank === undefined ? {} : { rank }),
  };
}

/** The rank an update declares (0: the federation's), checked against what this round accepts. */
function declaredRank(declared: number, e: Expectation): number | undefined {
  if (!e.rank) {
    if (declared !== 0)
      throw new UpdateRejected('rank', `update declares adapter rank ${declared}; this round has no per-client ranks`);
    return undefined;
  }
  const rank = declared === 0 ? e.rank.max : declared;
  if (rank > e.rank.max)
    throw new UpdateRejected('rank', `adapter rank ${rank} exceeds the federation's rank ${e.rank.max}`);
  if (e.rank.expected !== undefined && rank !== e.rank.expected)
    throw new UpdateRejected('rank', `update has adapter rank ${rank}, this client's rank is ${e.rank.expected}`);
  return rank;
}
