/**
 * Custom resource validation as the apiextensions-apiserver does it, for one version's structural `openAPIV3Schema`:
 * pruning of unknown fields, defaulting, OpenAPI validation (with ajv, on a copy of the schema without the
 * `x-kubernetes-*` extensions), list-type uniqueness and the CEL `x-kubernetes-validations` rules.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { CelError, compileCel, evaluateCel } from './cel.js';
import type { FieldError } from './errors.js';
import { clone, deepEqual, isObject, type JsonObject } from './util.js';

export interface ValidationRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  reason?: string;
  fieldPath?: string;
}

export interface JSONSchemaProps {
  type?: string;
  format?: string;
  description?: string;
  properties?: Record<string, JSONSchemaProps>;
  additionalProperties?: boolean | JSONSchemaProps;
  items?: JSONSchemaProps;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  nullable?: boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean | number;
  exclusiveMaximum?: boolean | number;
  allOf?: JSONSchemaProps[];
  anyOf?: JSONSchemaProps[];
  oneOf?: JSONSchemaProps[];
  not?: JSONSchemaProps;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-validations'?: ValidationRule[];
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  [key: string]: unknown;
}

/** The ObjectMeta fields the apiserver keeps; everything else under metadata is dropped on decode. */
export const OBJECT_META_FIELDS = new Set([
  'name',
  'generateName',
  'namespace',
  'selfLink',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'labels',
  'annotations',
  'ownerReferences',
  'finalizers',
  'managedFields',
]);

/** Drops unknown metadata fields; returns their paths. */
export function pruneMetadata(obj: JsonObject, prefix = 'metadata'): string[] {
  const meta = obj.metadata;
  if (!isObject(meta)) return [];
  const unknown: string[] = [];
  for (const k of Object.keys(meta)) {
    if (!OBJECT_META_FIELDS.has(k)) {
      delete meta[k];
      unknown.push(`${prefix}.${k}`);
    }
  }
  return unknown;
}

const joinPath = (path: string, key: string) => (path ? `${path}.${key}` : key);

// ---- the CRD schema's own problems (what a real apiserver would reject when the CRD is created) ----

export interface SchemaProblem {
  /** 'decode': the CRD JSON does not even decode (400); 'structural': a 422 from CRD validation. */
  kind: 'decode' | 'structural';
  message: string;
}

export function schemaProblems(schema: JSONSchemaProps, goPath: string, fieldPath: string): SchemaProblem[] {
  const out: SchemaProblem[] = [];
  const walk = (s: JSONSchemaProps, go: string, field: string, root: boolean) => {
    for (const key of ['exclusiveMinimum', 'exclusiveMaximum'] as const) {
      if (s[key] !== undefined && typeof s[key] !== 'boolean') {
        out.push({
          kind: 'decode',
          message: `json: cannot unmarshal ${typeof s[key]} into Go struct field JSONSchemaProps.${go}.${key} of type bool`,
        });
      }
    }
    const typed = s.type || s['x-kubernetes-int-or-string'] || s['x-kubernetes-preserve-unknown-fields'];
    if (!typed && !root) {
      out.push({
        kind: 'structural',
        message: `${field}.type: Required value: must not be empty for specified object fields`,
      });
    }
    for (const [k, p] of Object.entries(s.properties ?? {}))
      walk(p, `${go}.properties.${k}`, `${field}.properties[${k}]`, false);
    if (s.items) walk(s.items, `${go}.items`, `${field}.items`, false);
    if (isObject(s.additionalProperties))
      walk(
        s.additionalProperties as JSONSchemaProps,
        `${go}.additionalProperties`,
        `${field}.additionalProperties`,
        false,
      );
  };
  walk(schema, goPath, fieldPath, true);
  return out;
}

// ---- ajv ----

const SUPPORTED_FORMATS: Record<string, RegExp | ((s: string) => boolean)> = {
  'date-time': (s) =>
    /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.test(s) && !Number.isNaN(Date.parse(s)),
  datetime: (s) => /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.test(s),
  date: /^\d{4}-\d{2}-\d{2}$/,
  byte: /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/,
  uuid: /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/,
  ipv4: /^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)$/,
  hostname: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/i,
};

const ajv = new Ajv({ allErrors: true, strict: false, verbose: true, logger: false, validateFormats: true });
for (const [name, f] of Object.entries(SUPPORTED_FORMATS)) {
  ajv.addFormat(name, typeof f === 'function' ? { validate: f } : f);
}

const COPIED = [
  'enum',
  'minimum',
  'maximum',
  'minLength',
  'maxLength',
  'pattern',
  'minItems',
  'maxItems',
  'uniqueItems',
  'minProperties',
  'maxProperties',
  'multipleOf',
  'required',
] as const;

/** The schema ajv sees: OpenAPI v3.0 → JSON Schema (nullable, boolean exclusive bounds, int-or-string). */
function toJsonSchema(s: JSONSchemaProps, root: boolean): JsonObject {
  const out: JsonObject = {};
  if (s['x-kubernetes-int-or-string']) {
    out.anyOf = [{ type: 'integer' }, { type: 'string' }, ...(s.nullable ? [{ type: 'null' }] : [])];
  } else if (s.type) {
    out.type = s.nullable ? [s.type, 'null'] : s.type;
  }
  for (const k of COPIED) if (s[k] !== undefined) out[k] = clone(s[k]);
  if (s.nullable && Array.isArray(out.enum)) out.enum = [...out.enum, null];
  for (const [k, base] of [
    ['exclusiveMinimum', 'minimum'],
    ['exclusiveMaximum', 'maximum'],
  ] as const) {
    const v = s[k];
    if (typeof v === 'number') out[k] = v;
    else if (v === true && typeof s[base] === 'number') {
      out[k] = s[base];
      delete out[base];
    }
  }
  if (s.format && s.format in SUPPORTED_FORMATS) out.format = s.format;
  if (s.properties) {
    out.properties = Object.fromEntries(
      Object.entries(s.properties).map(([k, p]) => [
        k,
        root && k === 'metadata' ? { type: 'object' } : toJsonSchema(p, false),
      ]),
    );
  }
  if (isObject(s.additionalProperties))
    out.additionalProperties = toJsonSchema(s.additionalProperties as JSONSchemaProps, false);
  if (s.items) out.items = toJsonSchema(s.items, false);
  for (const k of ['allOf', 'anyOf', 'oneOf'] as const) {
    const list = s[k];
    if (list) out[k] = [...((out[k] as unknown[]) ?? []), ...list.map((x) => toJsonSchema(x, false))];
  }
  if (s.not) out.not = toJsonSchema(s.not, false);
  return out;
}

function pointerToPath(pointer: string): string {
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(seg)) out += `[${seg}]`;
    else out = joinPath(out, seg);
  }
  return out;
}

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

const fmtLiteral = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : String(v));

/** The API server's wording of a violated numeric or length bound. */
const LIMIT_WORDS = {
  minimum: (l: unknown) => `greater than or equal to ${l}`,
  exclusiveMinimum: (l: unknown) => `greater than ${l}`,
  maximum: (l: unknown) => `less than or equal to ${l}`,
  exclusiveMaximum: (l: unknown) => `less than ${l}`,
  minLength: (l: unknown) => `at least ${l} chars long`,
};

function fromAjv(e: ErrorObject): FieldError | undefined {
  const path = pointerToPath(e.instancePath);
  const p = e.params as Record<string, unknown>;
  // Status is validated against the status schema alone (on the status subresource): its "in body" paths are
  // relative to it, as the real server writes them (`received in body`, field `status.received`).
  const where = `${path.replace(/^status\./, '') || '<root>'} in body`;
  switch (e.keyword) {
    case 'required':
      return { type: 'Required', field: joinPath(path, String(p.missingProperty)) };
    case 'enum':
      return {
        type: 'NotSupported',
        field: path,
        value: e.data,
        detail: `supported values: ${(p.allowedValues as unknown[]).map(fmtLiteral).join(', ')}`,
      };
    case 'type': {
      const t = jsonType(e.data);
      return { type: 'TypeInvalid', field: path, value: t, detail: `${where} must be of type ${p.type}: "${t}"` };
    }
    case 'minimum':
    case 'exclusiveMinimum':
    case 'maximum':
    case 'exclusiveMaximum':
    case 'minLength':
      return {
        type: 'Invalid',
        field: path,
        value: e.data,
        detail: `${where} should be ${LIMIT_WORDS[e.keyword as keyof typeof LIMIT_WORDS](p.limit)}`,
      };
    case 'maxLength':
      return { type: 'TooLong', field: path, value: e.data, detail: `may not be longer than ${p.limit}` };
    case 'pattern':
      return { type: 'Invalid', field: path, value: e.data, detail: `${where} should match '${p.pattern}'` };
    case 'minItems':
      return {
        type: 'Invalid',
        field: path,
        value: (e.data as unknown[]).length,
        detail: `${where} should have at least ${p.limit} items`,
      };
    case 'maxItems':
      return {
        type: 'TooMany',
        field: path,
        value: (e.data as unknown[]).length,
        detail: `must have at most ${p.limit} items`,
      };
    case 'minProperties':
      return {
        type: 'Invalid',
        field: path,
        value: e.data,
        detail: `${where} should have at least ${p.limit} properties`,
      };
    case 'maxProperties':
      return {
        type: 'Invalid',
        field: path,
        value: e.data,
        detail: `${where} should have at most ${p.limit} properties`,
      };
    case 'multipleOf':
      return {
        type: 'Invalid',
        field: path,
        value: e.data,
        detail: `${where} should be a multiple of ${p.multipleOf}`,
      };
    case 'format':
      return {
        type: 'Invalid',
        field: path,
        value: e.data,
        detail: `${where} must be of type ${p.format}: ${fmtLiteral(e.data)}`,
      };
    case 'uniqueItems':
      return { type: 'Duplicate', field: `${path}[${p.i}]`, value: (e.data as unknown[])[p.i as number] };
    case 'anyOf':
    case 'oneOf':
      return {
        type: 'Invalid',
        field: path,
        value: e.data,
        detail: `${where} must validate ${e.keyword === 'anyOf' ? 'at least' : 'exactly'} one schema (${e.keyword})`,
      };
    case 'not':
      return { type: 'Invalid', field: path, value: e.data, detail: `${where} must not validate the schema (not)` };
    default:
      return { type: 'Invalid', field: path, value: e.data, detail: e.message ?? e.keyword };
  }
}

// ---- the compiled schema of one CRD version ----

export class CrdSchema {
  private readonly validateFn: ValidateFunction;

  constructor(readonly schema: JSONSchemaProps) {
    this.validateFn = ajv.compile(toJsonSchema(schema, true));
  }

  /** Removes fields the schema does not declare (apiVersion, kind and metadata are always kept); returns their paths. */
  prune(obj: JsonObject): string[] {
    const unknown: string[] = [];
    const walk = (v: unknown, s: JSONSchemaProps, path: string, root: boolean) => {
      if (Array.isArray(v)) {
        if (s.items) for (const [i, x] of v.entries()) walk(x, s.items, `${path}[${i}]`, false);
        return;
      }
      if (!isObject(v)) return;
      const embedded = root || s['x-kubernetes-embedded-resource'];
      const preserve = s['x-kubernetes-preserve-unknown-fields'] === true;
      const additional = s.additionalProperties;
      for (const key of Object.keys(v)) {
        if (embedded && (key === 'apiVersion' || key === 'kind')) continue;
        if (embedded && key === 'metadata') {
          unknown.push(...pruneMetadata(v, joinPath(path, 'metadata')));
          continue;
        }
        const ps = s.properties?.[key] ?? (isObject(additional) ? (additional as JSONSchemaProps) : undefined);
        if (ps) walk(v[key], ps, joinPath(path, key), false);
        else if (!preserve && additional !== true) {
          delete v[key];
          unknown.push(joinPath(path, key));
        }
      }
    };
    walk(obj, this.schema, '', true);
    return unknown;
  }

  /** Applies `default`s top-down (a defaulted object gets its own properties' defaults too). */
  applyDefaults(obj: JsonObject): void {
    const walk = (v: unknown, s: JSONSchemaProps) => {
      if (Array.isArray(v)) {
        if (s.items) for (const x of v) walk(x, s.items);
        return;
      }
      if (!isObject(v)) return;
      for (const [k, ps] of Object.entries(s.properties ?? {})) {
        if ((v[k] === undefined || (v[k] === null && !ps.nullable)) && ps.default !== undefined)
          v[k] = clone(ps.default);
      }
      for (const [k, x] of Object.entries(v)) {
        const ps =
          s.properties?.[k] ??
          (isObject(s.additionalProperties) ? (s.additionalProperties as JSONSchemaProps) : undefined);
        if (ps) walk(x, ps);
      }
    };
    walk(obj, this.schema);
  }

  /** Schema, list-type and (when those pass) CEL validation. `old` is the stored object on updates. */
  validate(obj: JsonObject, old?: JsonObject): FieldError[] {
    const errors: FieldError[] = [];
    if (!this.validateFn(obj)) {
      const errs = this.validateFn.errors ?? [];
      // int-or-string and nullable branches produce a type error per branch as well as the anyOf: keep the anyOf.
      const anyOfPaths = new Set(errs.filter((e) => e.keyword === 'anyOf').map((e) => e.schemaPath));
      for (const e of errs) {
        if ([...anyOfPaths].some((p) => e.schemaPath.startsWith(`${p}/`))) continue;
        const fe = fromAjv(e);
        if (fe) errors.push(fe);
      }
    }
    errors.push(...this.listTypeErrors(obj));
    if (errors.length === 0) errors.push(...this.celErrors(obj, old));
    return errors;
  }

  private listTypeErrors(obj: JsonObject): FieldError[] {
    const errors: FieldError[] = [];
    const walk = (v: unknown, s: JSONSchemaProps, path: string) => {
      if (Array.isArray(v)) {
        const lt = s['x-kubernetes-list-type'];
        const keys = s['x-kubernetes-list-map-keys'] ?? [];
        if (lt === 'set' || lt === 'map') {
          // Keyed by a canonical JSON form: linear in the list's length (a 10,000-entry roster stays cheap).
          const seen = new Set<string>();
          v.forEach((x, i) => {
            const id = lt === 'set' ? x : isObject(x) ? Object.fromEntries(keys.map((k) => [k, x[k]])) : x;
            const canonical = canonicalJson(id);
            if (seen.has(canonical)) errors.push({ type: 'Duplicate', field: `${path}[${i}]`, value: id });
            else seen.add(canonical);
          });
        }
        if (s.items) for (const [i, x] of v.entries()) walk(x, s.items, `${path}[${i}]`);
        return;
      }
      if (!isObject(v)) return;
      for (const [k, x] of Object.entries(v)) {
        const ps =
          s.properties?.[k] ??
          (isObject(s.additionalProperties) ? (s.additionalProperties as JSONSchemaProps) : undefined);
        if (ps) walk(x, ps, joinPath(path, k));
      }
    };
    walk(obj, this.schema, '');
    return errors;
  }

  private celErrors(obj: JsonObject, oldObj?: JsonObject): FieldError[] {
    const errors: FieldError[] = [];
    const walk = (v: unknown, old: unknown, s: JSONSchemaProps, path: string) => {
      if (v === undefined || v === null) return;
      const typeName = s.type ?? (s['x-kubernetes-int-or-string'] ? 'string' : 'object');
      for (const rule of s['x-kubernetes-validations'] ?? []) {
        let compiled: ReturnType<typeof compileCel>;
        try {
          compiled = compileCel(rule.rule);
        } catch (e) {
          errors.push({
            type: 'Invalid',
            field: path,
            value: typeName,
            detail: `compilation failed: ${(e as Error).message}`,
          });
          continue;
        }
        if (compiled.usesOldSelf && old === undefined) continue;
        const vars = { self: v, oldSelf: old };
        const field = rule.fieldPath ? `${path}${rule.fieldPath.startsWith('.') ? '' : '.'}${rule.fieldPath}` : path;
        try {
          const ok = evaluateCel(compiled, vars);
          if (ok === true) continue;
          let message = rule.message || `failed rule: ${rule.rule.trim()}`;
          if (rule.messageExpression) {
            try {
              const m = evaluateCel(rule.messageExpression, vars);
              if (typeof m === 'string' && m.trim()) message = m;
            } catch {
              // the apiserver falls back to message when messageExpression fails
            }
          }
          const type =
            rule.reason === 'FieldValueRequired'
              ? 'Required'
              : rule.reason === 'FieldValueForbidden'
                ? 'Forbidden'
                : rule.reason === 'FieldValueDuplicate'
                  ? 'Duplicate'
                  : 'Invalid';
          errors.push({ type, field, value: typeName, detail: message });
        } catch (e) {
          const msg = e instanceof CelError ? e.message : String(e);
          errors.push({
            type: 'Invalid',
            field,
            value: typeName,
            detail: `${msg} evaluating rule: ${rule.rule.trim()}`,
          });
        }
      }
      if (Array.isArray(v)) {
        if (!s.items) return;
        const keys = s['x-kubernetes-list-type'] === 'map' ? (s['x-kubernetes-list-map-keys'] ?? []) : undefined;
        v.forEach((x, i) => {
          const prev =
            keys && Array.isArray(old)
              ? old.find((o) => isObject(o) && isObject(x) && keys.every((k) => deepEqual(o[k], x[k])))
              : undefined;
          walk(x, prev, s.items!, `${path}[${i}]`);
        });
        return;
      }
      if (!isObject(v)) return;
      for (const [k, x] of Object.entries(v)) {
        const ps =
          s.properties?.[k] ??
          (isObject(s.additionalProperties) ? (s.additionalProperties as JSONSchemaProps) : undefined);
        if (ps) walk(x, isObject(old) ? old[k] : undefined, ps, joinPath(path, k));
      }
    };
    walk(obj, oldObj, this.schema, '');
    return errors;
  }
}

/** JSON with object keys sorted, so equal values (in the sense of deepEqual) get equal strings. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (isObject(v))
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`)
      .join(',')}}`;
  return JSON.stringify(v) ?? 'undefined';
}
