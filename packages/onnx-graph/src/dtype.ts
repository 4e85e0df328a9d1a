/**
 * ONNX element types (the TensorProto.DataType numbers) and the JavaScript typed arrays that hold them.
 */
export enum DType {
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  INT32 = 6,
  INT64 = 7,
  BOOL = 9,
  FLOAT16 = 10,
  DOUBLE = 11,
  BFLOAT16 = 16,
}

export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int32Array
  | BigInt64Array
  | Uint16Array;

interface DTypeInfo {
  /** Name as ONNX Runtime's JavaScript API spells it. */
  ortName: 'float32' | 'float64' | 'int8' | 'uint8' | 'int32' | 'int64' | 'bool' | 'float16' | 'bfloat16';
  bytes: number;
  floating: boolean;
  create(n: number): TypedArray;
}

const INFO: Record<DType, DTypeInfo> = {
  [DType.FLOAT]: { ortName: 'float32', bytes: 4, floating: true, create: (n) => new Float32Array(n) },
  [DType.DOUBLE]: { ortName: 'float64', bytes: 8, floating: true, create: (n) => new Float64Array(n) },
  [DType.FLOAT16]: { ortName: 'float16', bytes: 2, floating: true, create: (n) => new Uint16Array(n) },
  [DType.BFLOAT16]: { ortName: 'bfloat16', bytes: 2, floating: true, create: (n) => new Uint16Array(n) },
  [DType.INT8]: { ortName: 'int8', bytes: 1, floating: false, create: (n) => new Int8Array(n) },
  [DType.UINT8]: { ortName: 'uint8', bytes: 1, floating: false, create: (n) => new Uint8Array(n) },
  [DType.INT32]: { ortName: 'int32', bytes: 4, floating: false, create: (n) => new Int32Array(n) },
  [DType.INT64]: { ortName: 'int64', bytes: 8, floating: false, create: (n) => new BigInt64Array(n) },
  [DType.BOOL]: { ortName: 'bool', bytes: 1, floating: false, create: (n) => new Uint8Array(n) },
};

export function dtypeInfo(dtype: DType): DTypeInfo {
  const info = INFO[dtype];
  if (!info) throw new Error(`unsupported ONNX element type ${dtype}`);
  return info;
}

export const isFloating = (dtype: DType): boolean => dtypeInfo(dtype).floating;

export function dtypeName(dtype: DType): string {
  return DType[dtype] ?? `type#${dtype}`;
}

export function dtypeFromOrtName(name: string): DType {
  for (const [k, v] of Object.entries(INFO)) if (v.ortName === name) return Number(k) as DType;
  throw new Error(`unsupported ONNX Runtime tensor type '${name}'`);
}
