/**
 * Just enough of the Kubernetes protobuf encoding (`application/vnd.kubernetes.protobuf`) to accept the bodies that
 * kubectl's typed clients always send in protobuf: `kubectl create namespace|configmap|secret|serviceaccount`.
 * Other kinds answer 415 (use `kubectl apply -f`, which sends JSON).
 *
 * Wire format: the magic `k8s\0`, then a runtime.Unknown {typeMeta{apiVersion=1, kind=2}=1, raw=2}, raw being the
 * typed object's message (field numbers from k8s.io/api/core/v1/generated.proto).
 */
import { unsupportedMediaType } from './errors.js';
import type { JsonObject } from './util.js';

type FieldKind = 'string' | 'bytes' | 'int' | 'bool' | 'time' | 'strmap' | 'bytesmap' | 'strings';
interface Message {
  [field: number]: [name: string, kind: FieldKind | Message, repeated?: boolean];
}

const OWNER_REFERENCE: Message = {
  1: ['kind', 'string'],
  3: ['name', 'string'],
  4: ['uid', 'string'],
  5: ['apiVersion', 'string'],
  6: ['controller', 'bool'],
  7: ['blockOwnerDeletion', 'bool'],
};

const OBJECT_META: Message = {
  1: ['name', 'string'],
  2: ['generateName', 'string'],
  3: ['namespace', 'string'],
  5: ['uid', 'string'],
  6: ['resourceVersion', 'string'],
  7: ['generation', 'int'],
  8: ['creationTimestamp', 'time'],
  11: ['labels', 'strmap'],
  12: ['annotations', 'strmap'],
  13: ['ownerReferences', OWNER_REFERENCE, true],
  14: ['finalizers', 'strings'],
};

const OBJECT_REFERENCE: Message = {
  1: ['kind', 'string'],
  2: ['namespace', 'string'],
  3: ['name', 'string'],
  4: ['uid', 'string'],
  5: ['apiVersion', 'string'],
};

const KINDS: Record<string, Message> = {
  ConfigMap: {
    1: ['metadata', OBJECT_META],
    2: ['data', 'strmap'],
    3: ['binaryData', 'bytesmap'],
    4: ['immutable', 'bool'],
  },
  Secret: {
    1: ['metadata', OBJECT_META],
    2: ['data', 'bytesmap'],
    3: ['type', 'string'],
    4: ['stringData', 'strmap'],
    5: ['immutable', 'bool'],
  },
  Namespace: { 1: ['metadata', OBJECT_META], 2: ['spec', { 1: ['finalizers', 'strings'] }] },
  DeleteOptions: {
    1: ['gracePeriodSeconds', 'int'],
    2: ['preconditions', { 1: ['uid', 'string'], 2: ['resourceVersion', 'string'] }],
    3: ['orphanDependents', 'bool'],
    4: ['propagationPolicy', 'string'],
    5: ['dryRun', 'strings'],
  },
  ServiceAccount: {
    1: ['metadata', OBJECT_META],
    2: ['secrets', OBJECT_REFERENCE, true],
    3: ['imagePullSecrets', { 1: ['name', 'string'] }, true],
    4: ['automountServiceAccountToken', 'bool'],
  },
};

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  done() {
    return this.pos >= this.buf.length;
  }
  varint(): number {
    let result = 0;
    let shift = 1;
    for (;;) {
      const b = this.buf[this.pos++];
      if (b === undefined) throw new Error('truncated varint');
      result += (b & 0x7f) * shift;
      if (b < 0x80) return result;
      shift *= 128;
    }
  }
  bytes(): Buffer {
    const n = this.varint();
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  skip(wire: number) {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.bytes();
    else if (wire === 5) this.pos += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

function mapEntry(buf: Buffer): [string, Buffer] {
  const r = new Reader(buf);
  let key = '';
  let value: Buffer = Buffer.alloc(0);
  while (!r.done()) {
    const tag = r.varint();
    if (tag >> 3 === 1) key = r.bytes().toString('utf8');
    else if (tag >> 3 === 2) value = r.bytes();
    else r.skip(tag & 7);
  }
  return [key, value];
}

function decodeMessage(buf: Buffer, spec: Message): JsonObject {
  const out: JsonObject = {};
  const r = new Reader(buf);
  while (!r.done()) {
    const tag = r.varint();
    const field = spec[tag >> 3];
    if (!field) {
      r.skip(tag & 7);
      continue;
    }
    const [name, kind, repeated] = field;
    if (typeof kind === 'object') {
      const v = decodeMessage(r.bytes(), kind);
      if (repeated) out[name] = [...((out[name] as unknown[]) ?? []), v];
      else out[name] = v;
      continue;
    }
    switch (kind) {
      case 'string': {
        const s = r.bytes().toString('utf8');
        if (s) out[name] = s;
        break;
      }
      case 'bytes':
        out[name] = r.bytes().toString('base64');
        break;
      case 'int': {
        const n = r.varint();
        if (n) out[name] = n;
        break;
      }
      case 'bool':
        out[name] = r.varint() !== 0;
        break;
      case 'time': {
        const t = decodeMessage(r.bytes(), { 1: ['seconds', 'int'] });
        if (t.seconds) out[name] = new Date(Number(t.seconds) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
        break;
      }
      case 'strings':
        out[name] = [...((out[name] as unknown[]) ?? []), r.bytes().toString('utf8')];
        break;
      case 'strmap':
      case 'bytesmap': {
        const [k, v] = mapEntry(r.bytes());
        const m = (out[name] as Record<string, string>) ?? {};
        m[k] = kind === 'strmap' ? v.toString('utf8') : v.toString('base64');
        out[name] = m;
        break;
      }
    }
  }
  return out;
}

export const PROTOBUF = 'application/vnd.kubernetes.protobuf';

/** Decodes a protobuf request body of one of the supported kinds; 415 for the others. */
export function decodeProtobuf(body: Buffer): JsonObject {
  const magic = Buffer.from([0x6b, 0x38, 0x73, 0x00]);
  if (body.length < 4 || !body.subarray(0, 4).equals(magic))
    throw unsupportedMediaType(PROTOBUF, ['application/json', 'application/yaml']);
  const unknown = decodeMessage(body.subarray(4), {
    1: ['typeMeta', { 1: ['apiVersion', 'string'], 2: ['kind', 'string'] }],
    2: ['raw', 'bytes'],
  });
  const typeMeta = (unknown.typeMeta ?? {}) as { apiVersion?: string; kind?: string };
  const spec = KINDS[typeMeta.kind ?? ''];
  if (!spec) throw unsupportedMediaType(PROTOBUF, ['application/json', 'application/yaml']);
  const raw = Buffer.from(String(unknown.raw ?? ''), 'base64');
  return { apiVersion: typeMeta.apiVersion, kind: typeMeta.kind, ...decodeMessage(raw, spec) };
}
