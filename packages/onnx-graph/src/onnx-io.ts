import { readFile, writeFile } from 'node:fs/promises';
import onnxProto from 'onnx-proto';
import { DType, dtypeInfo } from './dtype.js';
import { Graph } from './graph.js';
import { OPS } from './ops/registry.js';
import type { AttrType } from './ops/schema.js';
import { sizeOf, type Tensor } from './tensor.js';
import { type AttrValue, type Dim, GraphError, type TensorType } from './types.js';

const { onnx } = onnxProto;
type Long = { toNumber(): number };
const num = (v: number | Long | null | undefined): number => (v == null ? 0 : typeof v === 'number' ? v : v.toNumber());

const IR_VERSION = 8;
const ATTR = onnx.AttributeProto.AttributeType;

// ---- encoding ---------------------------------------------------------------------------------------

function encodeTensor(name: string, t: Tensor): onnxProto.onnx.ITensorProto {
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return { name, dataType: t.dtype, dims: [...t.dims], rawData: bytes.slice() };
}

function encodeType(t: TensorType): onnxProto.onnx.ITypeProto {
  return {
    tensorType: {
      elemType: t.dtype,
      shape: { dim: t.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
    },
  };
}

function encodeAttr(name: string, value: AttrValue, type: AttrType): onnxProto.onnx.IAttributeProto {
  switch (type) {
    case 'int':
      return { name, type: ATTR.INT, i: value as number };
    case 'float':
      return { name, type: ATTR.FLOAT, f: value as number };
    case 'ints':
      return { name, type: ATTR.INTS, ints: value as number[] };
    case 'floats':
      return { name, type: ATTR.FLOATS, floats: value as number[] };
    case 'string':
      return { name, type: ATTR.STRING, s: new TextEncoder().encode(value as string) };
    case 'tensor':
      return { name, type: ATTR.TENSOR, t: encodeTensor('', value as Tensor) };
  }
}

/** Infers an attribute's wire type for operators without a schema. */
function guessAttrType(value: AttrValue): AttrType {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'number') return Number.isInteger(value) ? 'int' : 'float';
  if (Array.isArray(value)) return value.every(Number.isInteger) ? 'ints' : 'floats';
  return 'tensor';
}

export function toModelProto(
  g: Graph,
  options: { producer?: string; docString?: string } = {},
): onnxProto.onnx.IModelProto {
  return {
    irVersion: IR_VERSION,
    producerName: options.producer ?? '@fednano/onnx-graph',
    docString: options.docString ?? '',
    opsetImport: [{ domain: '', version: g.opset }],
    graph: {
      name: g.name,
      input: g.inputs.map((v) => ({ name: v.name, type: encodeType(v) })),
      output: g.outputs.map((v) => ({ name: v.name, type: encodeType(v) })),
      initializer: [...g.initializers].map(([name, t]) => encodeTensor(name, t)),
      node: g.nodes.map((n) => ({
        name: n.name,
        opType: n.op,
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs).map(([k, v]) =>
          encodeAttr(k, v, OPS[n.op]?.attrs[k]?.type ?? guessAttrType(v)),
        ),
      })),
    },
  };
}

export function encodeModel(g: Graph, options?: { producer?: string; docString?: string }): Uint8Array {
  return onnx.ModelProto.encode(onnx.ModelProto.create(toModelProto(g, options))).finish();
}

export async function saveModel(g: Graph, path: string): Promise<void> {
  await writeFile(path, encodeModel(g));
}

// ---- decoding ---------------------------------------------------------------------------------------

function decodeTensor(p: onnxProto.onnx.ITensorProto): Tensor {
  const dtype = (p.dataType ?? 0) as DType;
  const info = dtypeInfo(dtype);
  const dims = (p.dims ?? []).map(num);
  const n = sizeOf(dims);
  const data = info.create(n);
  if (p.rawData && p.rawData.length > 0) {
    if (p.rawData.length !== n * info.bytes)
      throw new GraphError(
        `initializer '${p.name}': raw data has ${p.rawData.length} bytes, expected ${n * info.bytes}`,
      );
    new Uint8Array(data.buffer).set(p.rawData);
  } else {
    const source =
      dtype === DType.DOUBLE
        ? p.doubleData
        : dtype === DType.INT64
          ? p.int64Data
          : dtype === DType.FLOAT
            ? p.floatData
            : p.int32Data;
    const values = (source ?? []) as (number | Long)[];
    if (values.length !== n)
      throw new GraphError(`initializer '${p.name}': has ${values.length} values, expected ${n}`);
    values.forEach((v, i) => {
      if (data instanceof BigInt64Array) data[i] = BigInt(num(v));
      else data[i] = num(v);
    });
  }
  return { dtype, dims, data };
}

function decodeType(v: onnxProto.onnx.IValueInfoProto): TensorType {
  const tt = v.type?.tensorType;
  if (!tt) throw new GraphError(`value '${v.name}' is not a tensor`);
  const shape: Dim[] = (tt.shape?.dim ?? []).map((d, i) =>
    d.dimParam ? d.dimParam : d.dimValue != null ? num(d.dimValue) : `${v.name}_dim${i}`,
  );
  return { dtype: (tt.elemType ?? 0) as DType, shape };
}

function decodeAttr(a: onnxProto.onnx.IAttributeProto): AttrValue {
  switch (a.type) {
    case ATTR.INT:
      return num(a.i);
    case ATTR.FLOAT:
      return a.f ?? 0;
    case ATTR.INTS:
      return (a.ints ?? []).map(num);
    case ATTR.FLOATS:
      return [...(a.floats ?? [])];
    case ATTR.STRING:
      return new TextDecoder().decode(a.s ?? new Uint8Array());
    case ATTR.TENSOR:
      return decodeTensor(a.t ?? {});
    default:
      throw new GraphError(`attribute '${a.name}' has unsupported type ${a.type}`);
  }
}

export function decodeModel(bytes: Uint8Array): Graph {
  const model = onnx.ModelProto.decode(bytes);
  const opset = model.opsetImport.find((o) => !o.domain || o.domain === 'ai.onnx');
  const pg = model.graph;
  if (!pg) throw new GraphError('model has no graph');
  const g = new Graph({ opset: num(opset?.version) || undefined, name: pg.name ?? 'graph' });
  const initNames = new Set((pg.initializer ?? []).map((t) => t.name));
  for (const t of pg.initializer ?? []) g.initializer(t.name ?? '', decodeTensor(t));
  for (const v of pg.input ?? []) {
    const t = decodeType(v);
    if (initNames.has(v.name ?? '')) continue; // an input with a default value: kept as an initializer
    g.input(v.name ?? '', t.dtype, t.shape);
  }
  const valueInfo = new Map((pg.valueInfo ?? []).map((v) => [v.name ?? '', decodeType(v)]));
  for (const o of pg.output ?? []) valueInfo.set(o.name ?? '', decodeType(o));
  for (const n of pg.node ?? []) {
    if (n.domain && n.domain !== 'ai.onnx')
      throw new GraphError(`node '${n.name}' (${n.opType}): operators of domain '${n.domain}' are not supported`);
    const outputs = n.output ?? [];
    const given = outputs.map((o) => valueInfo.get(o));
    const attrs = Object.fromEntries((n.attribute ?? []).map((a) => [a.name ?? '', decodeAttr(a)]));
    g.node(n.opType ?? '', n.input ?? [], attrs, {
      outputs,
      name: n.name || undefined,
      outputTypes: given.every((t) => t !== undefined) ? (given as TensorType[]) : undefined,
    });
  }
  for (const o of pg.output ?? []) g.output(o.name ?? '');
  return g;
}

export async function loadModel(path: string): Promise<Graph> {
  return decodeModel(await readFile(path));
}
