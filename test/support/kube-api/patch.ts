/**
 * The four patch types of the apiserver: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch
 * (approximated: merge patch where lists of objects are merged by their patch merge key, with the `$patch`,
 * `$setElementOrder`, `$retainKeys` and `$deleteFromPrimitiveList` directives kubectl emits) and server-side apply
 * (approximated as a merge with list-map keys taken from the schema).
 */
import { ApiError } from './errors.js';
import { clone, deepEqual, isObject, type JsonObject } from './util.js';

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

// ---- RFC 6902 ----

interface JsonPatchOp {
  op: string;
  path: string;
  from?: string;
  value?: unknown;
}

const patchError = (msg: string) => new ApiError(422, 'Invalid', msg);

function parsePointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw patchError(`invalid JSON pointer: "${p}"`);
  return p
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function container(doc: unknown, parts: string[], path: string): unknown {
  let cur = doc;
  for (const part of parts) {
    if (Array.isArray(cur)) cur = cur[Number(part)];
    else if (isObject(cur)) cur = cur[part];
    else cur = undefined;
    if (cur === undefined) throw patchError(`doc is missing path: "${path}": missing value`);
  }
  return cur;
}

function getAt(doc: unknown, path: string): unknown {
  const parts = parsePointer(path);
  return container(doc, parts, path);
}

function removeAt(doc: unknown, path: string): unknown {
  const parts = parsePointer(path);
  const last = parts.pop();
  if (last === undefined) throw patchError('cannot remove the document root');
  const parent = container(doc, parts, path);
  if (Array.isArray(parent)) {
    const i = Number(last);
    if (!Number.isInteger(i) || i < 0 || i >= parent.length)
      throw patchError(`unable to remove nonexistent key: ${last}: missing value`);
    return parent.splice(i, 1)[0];
  }
  if (isObject(parent)) {
    if (!(last in parent)) throw patchError(`unable to remove nonexistent key: ${last}: missing value`);
    const v = parent[last];
    delete parent[last];
    return v;
  }
  throw patchError(`doc is missing path: "${path}": missing value`);
}

function addAt(doc: unknown, path: string, value: unknown, replace: boolean): unknown {
  const parts = parsePointer(path);
  const last = parts.pop();
  if (last === undefined) return value;
  const parent = container(doc, parts, path);
  if (Array.isArray(parent)) {
    const i = last === '-' ? parent.length : Number(last);
    if (!Number.isInteger(i) || i < 0 || i > parent.length || (replace && i >= parent.length))
      throw patchError(`unable to access invalid index: ${last}: invalid index referenced`);
    if (replace) parent[i] = value;
    else parent.splice(i, 0, value);
  } else if (isObject(parent)) {
    if (replace && !(last in parent)) throw patchError(`replace operation does not apply: doc is missing key: ${path}`);
    parent[last] = value;
  } else throw patchError(`doc is missing path: "${path}": missing value`);
  return doc;
}

export function jsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops))
    throw new ApiError(400, 'BadRequest', 'json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  let out = clone(doc);
  for (const raw of ops as JsonPatchOp[]) {
    const { op, path } = raw;
    switch (op) {
      case 'add':
        out = addAt(out, path, clone(raw.value), false);
        break;
      case 'replace':
        out = addAt(out, path, clone(raw.value), true);
        break;
      case 'remove':
        removeAt(out, path);
        break;
      case 'move': {
        const v = removeAt(out, raw.from ?? '');
        out = addAt(out, path, v, false);
        break;
      }
      case 'copy':
        out = addAt(out, path, clone(getAt(out, raw.from ?? '')), false);
        break;
      case 'test': {
        const v = getAt(out, path);
        // The real server answers a failed test with a generic 422 and empty details.
        if (!deepEqual(v, raw.value))
          throw new ApiError(422, 'Invalid', 'the server rejected our request due to an error in our request', {});
        break;
      }
      default:
        throw patchError(`Unexpected kind: ${op}`);
    }
  }
  return out;
}

// ---- strategic merge patch ----

/** The patch merge keys of the built-in types' lists (from the Go struct tags), by field name. */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  volumes: 'name',
  env: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  imagePullSecrets: 'name',
  conditions: 'type',
  ownerReferences: 'uid',
  hostAliases: 'ip',
  topologySpreadConstraints: 'topologyKey',
  resourceClaims: 'name',
  readinessGates: 'conditionType',
  addresses: 'type',
  taints: 'key',
};
/** Primitive lists with patchStrategy=merge. */
const MERGED_PRIMITIVE_LISTS = new Set(['finalizers']);

function mergeKeyFor(field: string, a: unknown[], b: unknown[]): string | undefined {
  const all = [...a, ...b];
  if (field === 'ports') {
    if (all.every((x) => isObject(x) && 'containerPort' in x)) return 'containerPort';
    if (all.every((x) => isObject(x) && 'port' in x)) return 'port';
  }
  const known = MERGE_KEYS[field];
  if (known) return known;
  if (all.length > 0 && all.every((x) => isObject(x) && typeof x.name === 'string')) return 'name';
  return undefined;
}

type KeyLookup = (path: string[], field: string, current: unknown[], patch: unknown[]) => string[] | undefined;

const builtinKeys: KeyLookup = (_path, field, current, patch) => {
  const k = mergeKeyFor(field, current, patch);
  return k ? [k] : undefined;
};

const sameKey = (keys: string[], a: unknown, b: unknown) =>
  isObject(a) && isObject(b) && keys.every((k) => deepEqual(a[k], b[k]));

function mergeList(path: string[], field: string, current: unknown, patch: unknown[], lookup: KeyLookup): unknown[] {
  const cur = Array.isArray(current) ? current : [];
  if (patch.some((x) => isObject(x) && x.$patch === 'replace')) {
    return patch.filter((x) => !(isObject(x) && x.$patch === 'replace')).map((x) => strip(x));
  }
  const keys = lookup(path, field, cur, patch);
  if (!keys) {
    if (MERGED_PRIMITIVE_LISTS.has(field)) return [...cur, ...patch.filter((x) => !cur.some((c) => deepEqual(c, x)))];
    return patch.map((x) => strip(x));
  }
  const out = cur.map((x) => clone(x));
  for (const item of patch) {
    const i = out.findIndex((x) => sameKey(keys, x, item));
    if (isObject(item) && item.$patch === 'delete') {
      if (i >= 0) out.splice(i, 1);
      continue;
    }
    if (i >= 0) out[i] = strategicMerge(out[i], item, [...path, field], lookup);
    else out.push(strip(item));
  }
  return out;
}

/** Drops patch directives from a value being inserted. */
function strip(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(strip);
  if (!isObject(v)) return v;
  const out: JsonObject = {};
  for (const [k, x] of Object.entries(v)) {
    if (k.startsWith('$')) continue;
    if (x === null) continue;
    out[k] = strip(x);
  }
  return out;
}

export function strategicMerge(target: unknown, patch: unknown, path: string[] = [], lookup: KeyLookup = builtinKeys) {
  if (!isObject(patch)) return clone(patch);
  if (patch.$patch === 'replace') return strip(patch);
  if (patch.$patch === 'delete') return undefined;
  let out: JsonObject = isObject(target) ? { ...target } : {};
  const retain = patch.$retainKeys;
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$setElementOrder/') || k === '$retainKeys' || k === '$patch') continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const list = out[field];
      if (Array.isArray(list) && Array.isArray(v)) out[field] = list.filter((x) => !v.some((d) => deepEqual(d, x)));
      continue;
    }
    if (v === null) {
      delete out[k];
    } else if (Array.isArray(v)) {
      out[k] = mergeList(path, k, out[k], v, lookup);
    } else if (isObject(v)) {
      const merged = strategicMerge(out[k], v, [...path, k], lookup);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    } else {
      out[k] = v;
    }
  }
  if (Array.isArray(retain)) {
    out = Object.fromEntries(Object.entries(out).filter(([k]) => retain.includes(k)));
  }
  // $setElementOrder: reorder merged lists as the patch asks.
  for (const [k, order] of Object.entries(patch)) {
    if (!k.startsWith('$setElementOrder/') || !Array.isArray(order)) continue;
    const field = k.slice('$setElementOrder/'.length);
    const list = out[field];
    if (!Array.isArray(list)) continue;
    const keys = lookup(path, field, list, order);
    const ordered: unknown[] = [];
    for (const o of order) {
      const i = list.findIndex((x) => (keys ? sameKey(keys, x, o) : deepEqual(x, o)));
      if (i >= 0) ordered.push(list[i]);
    }
    out[field] = [...ordered, ...list.filter((x) => !ordered.includes(x))];
  }
  return out;
}
