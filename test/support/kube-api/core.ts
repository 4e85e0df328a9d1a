/**
 * The apiserver's generic registry semantics, independent of HTTP: create / get / list / update / patch / delete
 * with resourceVersion preconditions, generation, status subresources, finalizers, deletion propagation, pruning,
 * defaulting and validation. Used by the HTTP layer (server.ts) and by the test helpers that bypass HTTP.
 */
import { randomUUID } from 'node:crypto';
import { type BuiltinContext, defaultContext, HOOKS } from './builtins.js';
import {
  ApiError,
  alreadyExists,
  badRequest,
  conflict,
  type FieldError,
  forbidden,
  invalid,
  methodNotAllowed,
  notFound,
  unsupportedMediaType,
} from './errors.js';
import { jsonPatch, mergePatch, strategicMerge } from './patch.js';
import { apiVersionOf, crdProblems, crdToResourceType, grKey, Registry, type ResourceType } from './resources.js';
import {
  checkFieldSelector,
  type FieldRequirement,
  type LabelRequirement,
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
} from './selectors.js';
import { type Change, Store } from './store.js';
import { clone, deepEqual, isObject, type JsonObject, type KubeObject, randomSuffix, timestamp } from './util.js';
import { pruneMetadata } from './validation.js';

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

export interface WriteOptions {
  dryRun?: boolean;
  fieldValidation?: FieldValidation;
  fieldManager?: string;
  force?: boolean;
  /** Warnings for the `Warning` response header (unknown fields, CRD problems). */
  warnings?: string[];
}

export type PropagationPolicy = 'Orphan' | 'Background' | 'Foreground';

export interface DeleteOptions {
  propagationPolicy?: PropagationPolicy;
  orphanDependents?: boolean;
  gracePeriodSeconds?: number;
  preconditions?: { uid?: string; resourceVersion?: string };
  dryRun?: boolean;
}

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
}

export interface ListResult {
  items: KubeObject[];
  resourceVersion: string;
  continue?: string;
  remainingItemCount?: number;
}

export const PATCH_TYPES = [
  'application/json-patch+json',
  'application/merge-patch+json',
  'application/strategic-merge-patch+json',
];

export const CRD_GR = 'customresourcedefinitions.apiextensions.k8s.io';
const CRD_CLEANUP_FINALIZER = 'customresourcecleanup.apiextensions.k8s.io';
const PROTECTED_NAMESPACES = new Set(['default', 'kube-system', 'kube-public']);

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035 = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

const NAME_MESSAGES = {
  subdomain:
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
  label:
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
  dns1035:
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
};

function validateName(rt: ResourceType, name: string): FieldError[] {
  if (rt.nameFormat === 'path') {
    if (name === '.' || name === '..' || /[/%]/.test(name))
      return [{ type: 'Invalid', field: 'metadata.name', value: name, detail: `may not contain '/' or '%'` }];
    return [];
  }
  const max = rt.nameFormat === 'subdomain' ? 253 : 63;
  const re = rt.nameFormat === 'subdomain' ? SUBDOMAIN : rt.nameFormat === 'label' ? LABEL : DNS1035;
  const errors: FieldError[] = [];
  if (name.length > max)
    errors.push({
      type: 'Invalid',
      field: 'metadata.name',
      value: name,
      detail: `must be no more than ${max} characters`,
    });
  if (!re.test(name))
    errors.push({ type: 'Invalid', field: 'metadata.name', value: name, detail: NAME_MESSAGES[rt.nameFormat] });
  return errors;
}

function validateLabels(labels: unknown, field: string): FieldError[] {
  if (labels === undefined || labels === null) return [];
  if (!isObject(labels)) return [{ type: 'Invalid', field, value: labels, detail: 'must be a map of strings' }];
  const errors: FieldError[] = [];
  for (const [k, v] of Object.entries(labels)) {
    const [prefix, name] = k.includes('/') ? [k.slice(0, k.indexOf('/')), k.slice(k.indexOf('/') + 1)] : ['', k];
    if (!name || name.length > 63 || !QUALIFIED_NAME.test(name) || (prefix && !SUBDOMAIN.test(prefix)))
      errors.push({
        type: 'Invalid',
        field,
        value: k,
        detail:
          "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
      });
    if (field.endsWith('labels') && (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v)))
      errors.push({
        type: 'Invalid',
        field,
        value: v,
        detail:
          typeof v === 'string' && v.length > 63
            ? 'must be no more than 63 characters'
            : "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
      });
    if (field.endsWith('annotations') && typeof v !== 'string')
      errors.push({ type: 'Invalid', field, value: v, detail: 'must be a string' });
  }
  return errors;
}

function validateOwnerReferences(refs: unknown): FieldError[] {
  if (refs === undefined) return [];
  if (!Array.isArray(refs)) return [{ type: 'Invalid', field: 'metadata.ownerReferences', value: refs }];
  const errors: FieldError[] = [];
  refs.forEach((r, i) => {
    const ref = isObject(r) ? r : {};
    for (const f of ['apiVersion', 'kind', 'name', 'uid'])
      if (!ref[f]) errors.push({ type: 'Required', field: `metadata.ownerReferences[${i}].${f}` });
  });
  if (refs.filter((r) => isObject(r) && r.controller === true).length > 1)
    errors.push({
      type: 'Invalid',
      field: 'metadata.ownerReferences',
      value: refs,
      detail: 'Only one reference can have Controller set to true',
    });
  return errors;
}

/** metadata.finalizers, and for namespaces spec.finalizers too. */
export const hasPendingFinalizers = (o: KubeObject) =>
  (o.metadata.finalizers ?? []).length > 0 ||
  (o.kind === 'Namespace' && ((o.spec as { finalizers?: string[] } | undefined)?.finalizers ?? []).length > 0);

/** Everything the generation counts: the whole object but metadata and status (CRs), or spec (built-ins). */
function specView(rt: ResourceType, o: KubeObject): unknown {
  if (rt.crd) {
    const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = o;
    return rest;
  }
  return o.spec;
}

export interface CoreOptions {
  historyLimit?: number;
  /** Reject CRDs a real apiserver would reject (e.g. numeric exclusiveMinimum); default false: accept and warn. */
  strictCrdSchemas?: boolean;
  /**
   * Pods bound to a node are deleted gracefully, as by the real apiserver: DELETE sets deletionTimestamp (now + grace
   * period) and the pod stays until the kubelet deletes it with gracePeriodSeconds=0. Default false: deleted at once.
   */
  podGracefulDeletion?: boolean;
  /** See BuiltinContext.strictMicroTime. */
  strictMicroTime?: boolean;
}

export class KubeCore {
  readonly registry = new Registry();
  readonly store: Store;
  readonly builtinContext: BuiltinContext = defaultContext();
  /** Problems found in served CRDs that a real apiserver would refuse (see strictCrdSchemas). */
  readonly crdWarnings: string[] = [];

  constructor(readonly options: CoreOptions = {}) {
    this.store = new Store(options.historyLimit ?? 10_000);
    this.builtinContext.strictMicroTime = options.strictMicroTime;
    this.store.subscribe((c) => this.onCrdChange(c));
  }

  // ---- reading ----

  rtFor(gr: string): ResourceType | undefined {
    return this.registry.all().find((t) => grKey(t) === gr);
  }

  /** The object as served at `version` (custom resources: apiVersion rewritten, conversion strategy None). */
  render(rt: ResourceType, version: string, o: KubeObject): KubeObject {
    const apiVersion = apiVersionOf(rt.group, version);
    if (o.apiVersion === apiVersion && o.kind === rt.kind) return o;
    const { apiVersion: _a, kind: _k, ...rest } = o;
    return { apiVersion, kind: rt.kind, ...rest } as KubeObject;
  }

  get(rt: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const o = this.store.get(grKey(rt), rt.namespaced ? namespace : undefined, name);
    if (!o) throw notFound(rt, name);
    return o;
  }

  selectors(rt: ResourceType, opts: ListOptions): { labels: LabelRequirement[]; fields: FieldRequirement[] } {
    const labels = parseLabelSelector(opts.labelSelector);
    const fields = parseFieldSelector(opts.fieldSelector);
    checkFieldSelector(fields, rt.fieldSelectors);
    return { labels, fields };
  }

  list(rt: ResourceType, namespace: string | undefined, opts: ListOptions = {}): ListResult {
    const { labels, fields } = this.selectors(rt, opts);
    const rv = String(this.store.resourceVersion);
    let items = this.store
      .list(grKey(rt), rt.namespaced ? namespace : undefined)
      .filter((o) => matchesLabels(labels, o.metadata.labels) && matchesFields(fields, o));
    let start = 0;
    if (opts.continue) {
      let token: { start?: string };
      try {
        token = JSON.parse(Buffer.from(opts.continue, 'base64').toString('utf8'));
      } catch {
        throw badRequest(`continue key is not valid: illegal base64 data`);
      }
      const after = token.start ?? '';
      start = items.findIndex((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}` > after);
      if (start < 0) start = items.length;
    }
    items = items.slice(start);
    const result: ListResult = { items, resourceVersion: rv };
    if (opts.limit && opts.limit > 0 && items.length > opts.limit) {
      const page = items.slice(0, opts.limit);
      const last = page[page.length - 1]!;
      result.items = page;
      result.remainingItemCount = items.length - opts.limit;
      result.continue = Buffer.from(
        JSON.stringify({
          v: 'meta.k8s.io/v1',
          rv: Number(rv),
          start: `${last.metadata.namespace ?? ''}/${last.metadata.name}`,
        }),
      ).toString('base64');
    }
    return result;
  }

  // ---- writing ----

  private fail(rt: ResourceType, name: string, errors: FieldError[]): never {
    throw invalid(rt.group, rt.kind, name, errors);
  }

  /** apiVersion/kind must match the endpoint when given; built-ins get them filled in when absent. */
  private checkTypeMeta(rt: ResourceType, version: string, o: KubeObject) {
    const want = apiVersionOf(rt.group, version);
    if (!o.kind || !o.apiVersion) {
      if (rt.crd) {
        throw badRequest(`Object 'Kind' is missing in '${JSON.stringify(o).slice(0, 200)}'`);
      }
      o.apiVersion ??= want;
      o.kind ??= rt.kind;
    }
    if (o.apiVersion !== want && !(rt.crd && rt.versions.includes(String(o.apiVersion).split('/')[1] ?? '')))
      throw badRequest(
        `the API version in the data (${o.apiVersion}) does not match the expected API version (${want})`,
      );
    if (o.kind !== rt.kind)
      throw badRequest(`the kind in the data (${o.kind}) does not match the expected kind (${rt.kind})`);
    o.apiVersion = want;
  }

  /** Prunes unknown fields; Strict fails with 400, Warn (the default) adds warnings. */
  private prune(rt: ResourceType, version: string, o: KubeObject, opts: WriteOptions) {
    const schema = rt.crd?.versions.get(version)?.schema;
    const unknown = schema ? schema.prune(o as JsonObject) : pruneMetadata(o as JsonObject);
    // ObjectMeta's slices and maps are omitempty: an empty finalizers list (what a client sends to remove the last
    // one), labels or annotations are not stored.
    if (isObject(o.metadata))
      for (const k of ['finalizers', 'ownerReferences', 'labels', 'annotations', 'managedFields'] as const) {
        const v = (o.metadata as JsonObject)[k];
        if ((Array.isArray(v) && v.length === 0) || (isObject(v) && Object.keys(v).length === 0))
          delete (o.metadata as JsonObject)[k];
      }
    if (unknown.length === 0 || opts.fieldValidation === 'Ignore') return;
    if (opts.fieldValidation === 'Strict') {
      throw badRequest(
        `${rt.kind} in version "${version}" cannot be handled as a ${rt.kind}: strict decoding error: ${unknown
          .map((u) => `unknown field "${u}"`)
          .join(', ')}`,
      );
    }
    opts.warnings?.push(...unknown.map((u) => `unknown field "${u}"`));
  }

  private applyDefaults(rt: ResourceType, version: string, o: KubeObject, old?: KubeObject) {
    rt.crd?.versions.get(version)?.schema?.applyDefaults(o as JsonObject);
    HOOKS[grKey(rt)]?.defaults?.(o, this.builtinContext, old);
  }

  private validate(rt: ResourceType, version: string, o: KubeObject, old?: KubeObject): FieldError[] {
    const errors: FieldError[] = [];
    const name = o.metadata.name ?? '';
    errors.push(...validateName(rt, name));
    errors.push(...validateLabels(o.metadata.labels, 'metadata.labels'));
    errors.push(...validateLabels(o.metadata.annotations, 'metadata.annotations'));
    errors.push(...validateOwnerReferences(o.metadata.ownerReferences));
    if (o.metadata.finalizers !== undefined && !Array.isArray(o.metadata.finalizers))
      errors.push({ type: 'Invalid', field: 'metadata.finalizers', value: o.metadata.finalizers });
    const schema = rt.crd?.versions.get(version)?.schema;
    if (schema) errors.push(...schema.validate(o as JsonObject, old as JsonObject | undefined));
    errors.push(...(HOOKS[grKey(rt)]?.validate?.(o, old) ?? []));
    if (grKey(rt) === CRD_GR) errors.push(...this.crdErrors(o));
    return errors;
  }

  private crdErrors(o: KubeObject): FieldError[] {
    const problems = crdProblems(o);
    const errors: FieldError[] = [];
    for (const p of problems) {
      if (p.kind === 'decode') {
        if (this.options.strictCrdSchemas)
          throw badRequest(
            `CustomResourceDefinition in version "v1" cannot be handled as a CustomResourceDefinition: ${p.message}`,
          );
        continue;
      }
      const [field, ...rest] = p.message.split(': ');
      errors.push({ type: 'Invalid', field: field!, value: undefined, detail: rest.join(': ') });
    }
    return errors;
  }

  private checkNamespace(rt: ResourceType, namespace: string | undefined, name: string) {
    if (!rt.namespaced) return;
    const ns = this.store.get('namespaces', undefined, namespace ?? '');
    if (!ns) throw notFound({ group: '', plural: 'namespaces' }, namespace ?? '');
    if (ns.metadata.deletionTimestamp)
      throw forbidden(
        rt,
        name,
        `unable to create new content in namespace ${namespace} because it is being terminated`,
      );
  }

  private checkCrdServing(rt: ResourceType) {
    if (!rt.crd) return;
    const crd = this.store.get(CRD_GR, undefined, rt.crd.name);
    if (crd?.metadata.deletionTimestamp)
      throw methodNotAllowed(`create not allowed while custom resource definition is terminating`);
  }

  private hasStatus(rt: ResourceType, version: string) {
    if (rt.crd) return rt.crd.versions.get(version)?.statusSubresource ?? false;
    return rt.subresources.includes('status');
  }

  create(rt: ResourceType, version: string, namespace: string | undefined, body: unknown, opts: WriteOptions = {}) {
    if (!isObject(body)) throw badRequest('the body of the request must be a JSON object');
    const o = clone(body) as KubeObject;
    this.checkTypeMeta(rt, version, o);
    if (!isObject(o.metadata)) o.metadata = {};
    const meta = o.metadata;
    if (rt.namespaced) {
      if (meta.namespace && namespace && meta.namespace !== namespace)
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      meta.namespace = namespace ?? meta.namespace;
      if (!meta.namespace) throw badRequest('the namespace of the object is required');
    } else delete meta.namespace;
    this.prune(rt, version, o, opts);
    if (!meta.name && meta.generateName) {
      do meta.name = `${meta.generateName}${randomSuffix()}`;
      while (this.store.get(grKey(rt), meta.namespace, meta.name));
    }
    if (!meta.name)
      this.fail(rt, '', [{ type: 'Required', field: 'metadata.name', detail: 'name or generateName is required' }]);

    const hooks = HOOKS[grKey(rt)];
    const resetStatus = this.hasStatus(rt, version) && !hooks?.keepStatusOnCreate;
    if (resetStatus) delete o.status;
    this.applyDefaults(rt, version, o);
    if (resetStatus && hooks?.initialStatus) o.status = hooks.initialStatus(o);

    for (const k of ['deletionTimestamp', 'deletionGracePeriodSeconds', 'resourceVersion', 'selfLink', 'managedFields'])
      delete meta[k];
    meta.uid = randomUUID();
    meta.creationTimestamp = timestamp();
    if (rt.hasGeneration) meta.generation = 1;
    else delete meta.generation;
    if (grKey(rt) === CRD_GR) this.prepareCrd(o);

    const errors = this.validate(rt, version, o);
    if (errors.length) this.fail(rt, meta.name, errors);
    this.checkNamespace(rt, meta.namespace, meta.name);
    this.checkCrdServing(rt);
    if (this.store.get(grKey(rt), meta.namespace, meta.name)) throw alreadyExists(rt, meta.name);
    if (opts.dryRun) return this.render(rt, version, o);
    this.store.put(grKey(rt), o);
    if (grKey(rt) === 'namespaces') this.createDefaultServiceAccount(meta.name);
    return this.render(rt, version, o);
  }

  private createDefaultServiceAccount(namespace: string) {
    const sa = this.registry.byGR('', 'serviceaccounts')!;
    if (this.store.get('serviceaccounts', namespace, 'default')) return;
    this.create(sa, 'v1', namespace, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default' } });
  }

  update(
    rt: ResourceType,
    version: string,
    namespace: string | undefined,
    name: string,
    body: unknown,
    opts: WriteOptions & { subresource?: string; fromPatch?: boolean } = {},
  ): KubeObject {
    const old = this.get(rt, namespace, name);
    if (!isObject(body)) throw badRequest('the body of the request must be a JSON object');
    const o = clone(body) as KubeObject;
    this.checkTypeMeta(rt, version, o);
    if (!isObject(o.metadata)) o.metadata = {};
    if (o.metadata.name && o.metadata.name !== name)
      throw badRequest(`the name of the object (${o.metadata.name}) does not match the name on the URL (${name})`);
    if (rt.namespaced && o.metadata.namespace && o.metadata.namespace !== old.metadata.namespace)
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    const rv = o.metadata.resourceVersion;
    if (rv) {
      if (rv !== old.metadata.resourceVersion) throw conflict(rt, name);
    } else if (rt.crd && !opts.fromPatch) {
      // The real server names the resource here, not the kind: `federationrounds.fednano.io "r1" is invalid`.
      throw invalid(rt.group, rt.plural, name, [
        { type: 'Invalid', field: 'metadata.resourceVersion', value: 0, detail: 'must be specified for an update' },
      ]);
    }
    this.prune(rt, version, o, opts);

    let n: KubeObject;
    const status = opts.subresource === 'status';
    if (status) {
      n = clone(old);
      if (o.status === undefined) delete n.status;
      else n.status = o.status;
    } else {
      n = o;
      const meta = n.metadata;
      for (const k of [
        'uid',
        'creationTimestamp',
        'deletionTimestamp',
        'deletionGracePeriodSeconds',
        'generation',
        'selfLink',
      ]) {
        if (old.metadata[k] === undefined) delete meta[k];
        else meta[k] = old.metadata[k];
      }
      meta.name = name;
      if (rt.namespaced) meta.namespace = old.metadata.namespace;
      else delete meta.namespace;
      if (this.hasStatus(rt, version)) {
        if (old.status === undefined) delete n.status;
        else n.status = clone(old.status);
      }
      this.applyDefaults(rt, version, n, old);
      if (old.metadata.deletionTimestamp) {
        const added = (meta.finalizers ?? []).filter((f) => !(old.metadata.finalizers ?? []).includes(f));
        if (added.length) {
          const e: FieldError = {
            type: 'Forbidden',
            field: 'metadata.finalizers',
            detail: `no new finalizers can be added if the object is being deleted, found new finalizers []string{${added
              .map((f) => JSON.stringify(f))
              .join(', ')}}`,
          };
          // The real server checks this twice (object meta update validation and the update strategy) and lists
          // both causes.
          this.fail(rt, name, [e, e]);
        }
      }
      if (grKey(rt) === CRD_GR) this.prepareCrd(n, old);
    }
    n.metadata.resourceVersion = old.metadata.resourceVersion;
    n.apiVersion = old.apiVersion ?? n.apiVersion;

    const errors = this.validate(rt, version, n, old);
    if (errors.length) this.fail(rt, name, errors);

    if (deepEqual(n, old)) return this.render(rt, version, old);
    if (!status && rt.hasGeneration && !deepEqual(specView(rt, n), specView(rt, old)))
      n.metadata.generation = (old.metadata.generation ?? 0) + 1;
    if (opts.dryRun) return this.render(rt, version, n);
    if (n.metadata.deletionTimestamp && !hasPendingFinalizers(n) && !n.metadata.deletionGracePeriodSeconds) {
      const last = this.store.remove(grKey(rt), n);
      return this.render(rt, version, last ?? n);
    }
    this.store.put(grKey(rt), n);
    return this.render(rt, version, n);
  }

  patch(
    rt: ResourceType,
    version: string,
    namespace: string | undefined,
    name: string,
    contentType: string,
    raw: string,
    opts: WriteOptions & { subresource?: string } = {},
  ): KubeObject {
    const type = contentType.split(';')[0]!.trim().toLowerCase();
    if (!PATCH_TYPES.includes(type) || (rt.crd && type === 'application/strategic-merge-patch+json')) {
      throw unsupportedMediaType(
        type,
        PATCH_TYPES.filter((t) => !(rt.crd && t === 'application/strategic-merge-patch+json')),
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch (e) {
      throw badRequest(`error decoding patch: ${(e as Error).message}`);
    }
    const old = this.get(rt, namespace, name);
    const current = this.render(rt, version, old);
    let patched: unknown;
    switch (type) {
      case 'application/json-patch+json':
        patched = jsonPatch(current, body);
        break;
      case 'application/merge-patch+json':
        patched = mergePatch(current, body);
        break;
      default:
        patched = strategicMerge(current, body);
    }
    if (!isObject(patched)) throw new ApiError(422, 'Invalid', 'the patch did not produce an object');
    return this.update(rt, version, namespace, name, patched, { ...opts, fromPatch: true });
  }

  /** DELETE: finalizers keep the object (with deletionTimestamp) until removed; dependents are collected (gc.ts). */
  delete(
    rt: ResourceType,
    namespace: string | undefined,
    name: string,
    opts: DeleteOptions = {},
  ): { object: KubeObject; deleted: boolean } {
    const old = this.get(rt, namespace, name);
    const pre = opts.preconditions;
    if (pre?.uid && pre.uid !== old.metadata.uid)
      throw conflict(
        rt,
        name,
        `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${old.metadata.uid}`,
      );
    if (pre?.resourceVersion && pre.resourceVersion !== old.metadata.resourceVersion)
      throw conflict(
        rt,
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion}`,
      );
    if (grKey(rt) === 'namespaces' && PROTECTED_NAMESPACES.has(name))
      throw forbidden(rt, name, 'this namespace may not be deleted');
    const policy: PropagationPolicy =
      opts.propagationPolicy ??
      (opts.orphanDependents === true
        ? 'Orphan'
        : (old.metadata.finalizers ?? []).includes('orphan')
          ? 'Orphan'
          : (old.metadata.finalizers ?? []).includes('foregroundDeletion')
            ? 'Foreground'
            : 'Background');
    if (!['Orphan', 'Background', 'Foreground'].includes(policy))
      this.fail({ ...rt, group: 'meta.k8s.io', kind: 'DeleteOptions' }, '', [
        {
          type: 'NotSupported',
          field: 'propagationPolicy',
          value: policy,
          detail: 'supported values: "Foreground", "Background", "Orphan", "nil"',
        },
      ]);
    if (opts.dryRun) return { object: this.render(rt, rt.versions[0]!, old), deleted: false };
    const version = rt.versions[0]!;
    const graceful = this.gracefulPodDeletion(rt, old, opts);
    if (graceful) return { object: this.render(rt, version, graceful), deleted: false };
    if (policy === 'Orphan') this.orphanDependents(old);

    const finalizers = [...(old.metadata.finalizers ?? [])];
    if (policy === 'Foreground' && !finalizers.includes('foregroundDeletion')) finalizers.push('foregroundDeletion');
    const isNamespace = grKey(rt) === 'namespaces';
    const nsFinalizers = isNamespace
      ? (((old.spec as JsonObject | undefined)?.finalizers as string[] | undefined) ?? [])
      : [];
    if (finalizers.length > 0 || nsFinalizers.length > 0) {
      if (old.metadata.deletionTimestamp && deepEqual(finalizers, old.metadata.finalizers ?? [])) {
        return { object: this.render(rt, version, old), deleted: false };
      }
      const n = clone(old);
      if (!n.metadata.deletionTimestamp) {
        n.metadata.deletionTimestamp = timestamp();
        n.metadata.deletionGracePeriodSeconds = 0;
        if ((n.metadata.generation ?? 0) > 0) n.metadata.generation = n.metadata.generation! + 1;
      }
      if (finalizers.length) n.metadata.finalizers = finalizers;
      if (isNamespace) n.status = { ...(isObject(n.status) ? n.status : {}), phase: 'Terminating' };
      this.store.put(grKey(rt), n);
      return { object: this.render(rt, version, n), deleted: false };
    }
    const last = this.store.remove(grKey(rt), old)!;
    return { object: this.render(rt, version, last), deleted: true };
  }

  /** The pod's graceful deletion step, or undefined when it is to be deleted now (grace 0, unbound, finished). */
  private gracefulPodDeletion(rt: ResourceType, old: KubeObject, opts: DeleteOptions): KubeObject | undefined {
    if (!this.options.podGracefulDeletion || grKey(rt) !== 'pods') return undefined;
    const spec = (old.spec ?? {}) as JsonObject;
    const phase = (old.status as JsonObject | undefined)?.phase;
    if (!spec.nodeName || phase === 'Succeeded' || phase === 'Failed') return undefined;
    const grace = opts.gracePeriodSeconds ?? (spec.terminationGracePeriodSeconds as number | undefined) ?? 30;
    if (grace <= 0) return undefined;
    const current = old.metadata.deletionGracePeriodSeconds;
    if (old.metadata.deletionTimestamp && current !== undefined && current <= grace) return old;
    const n = clone(old);
    n.metadata.deletionTimestamp = timestamp(new Date(Date.now() + grace * 1000));
    n.metadata.deletionGracePeriodSeconds = grace;
    this.store.put(grKey(rt), n);
    return n;
  }

  deleteCollection(rt: ResourceType, namespace: string | undefined, list: ListOptions, opts: DeleteOptions = {}) {
    const { items } = this.list(rt, namespace, {
      labelSelector: list.labelSelector,
      fieldSelector: list.fieldSelector,
    });
    return items.map((o) => this.delete(rt, o.metadata.namespace, o.metadata.name!, opts).object);
  }

  /** Orphan propagation: removes the owner's references from its dependents. */
  orphanDependents(owner: KubeObject) {
    const uid = owner.metadata.uid;
    if (!uid) return;
    for (const { gr, object } of this.dependents(uid)) {
      const n = clone(object);
      n.metadata.ownerReferences = (n.metadata.ownerReferences ?? []).filter((r) => r.uid !== uid);
      if (!n.metadata.ownerReferences.length) delete n.metadata.ownerReferences;
      this.store.put(gr, n);
    }
  }

  /** Every stored object with an ownerReference to `uid`. */
  dependents(uid: string): { gr: string; object: KubeObject }[] {
    const out: { gr: string; object: KubeObject }[] = [];
    for (const gr of this.store.groupResources()) {
      for (const o of this.store.list(gr)) {
        if (o.metadata.ownerReferences?.some((r) => r.uid === uid)) out.push({ gr, object: o });
      }
    }
    return out;
  }

  // ---- CRDs ----

  private prepareCrd(o: KubeObject, old?: KubeObject) {
    const spec = (isObject(o.spec) ? o.spec : {}) as JsonObject;
    o.spec = spec;
    const names = (isObject(spec.names) ? spec.names : {}) as JsonObject;
    spec.names = names;
    if (typeof names.kind === 'string') {
      names.singular ??= names.kind.toLowerCase();
      names.listKind ??= `${names.kind}List`;
    }
    spec.conversion ??= { strategy: 'None' };
    if (!old) {
      const finalizers = o.metadata.finalizers ?? [];
      if (!finalizers.includes(CRD_CLEANUP_FINALIZER)) o.metadata.finalizers = [...finalizers, CRD_CLEANUP_FINALIZER];
    }
    const now = timestamp();
    const versions = Array.isArray(spec.versions) ? spec.versions.filter(isObject) : [];
    const storage = versions.filter((v) => v.storage).map((v) => v.name);
    if (old && isObject(old.status)) {
      const stored = Array.isArray(old.status.storedVersions) ? old.status.storedVersions : [];
      o.status = {
        ...old.status,
        acceptedNames: clone(names),
        storedVersions: [...stored, ...storage.filter((v) => !stored.includes(v))],
      };
      return;
    }
    o.status = {
      conditions: [
        {
          type: 'NamesAccepted',
          status: 'True',
          lastTransitionTime: now,
          reason: 'NoConflicts',
          message: 'no conflicts found',
        },
        {
          type: 'Established',
          status: 'True',
          lastTransitionTime: now,
          reason: 'InitialNamesAccepted',
          message: 'the initial names have been accepted',
        },
      ],
      acceptedNames: clone(names),
      storedVersions: storage,
    };
  }

  /** Serving follows the stored CRDs: (re)registered when written, unregistered when gone. */
  private onCrdChange(c: Change) {
    if (c.gr !== CRD_GR) return;
    const spec = (c.object.spec ?? {}) as { group?: string; names?: { plural?: string } };
    if (c.type === 'DELETED') {
      if (spec.group && spec.names?.plural) this.registry.remove(spec.group, spec.names.plural);
      return;
    }
    try {
      this.registry.add(crdToResourceType(c.object));
    } catch (e) {
      this.crdWarnings.push(`${c.object.metadata.name}: not served: ${(e as Error).message}`);
    }
    for (const p of crdProblems(c.object)) {
      const msg = `${c.object.metadata.name}: a real apiserver would reject this CRD: ${p.message}`;
      if (!this.crdWarnings.includes(msg)) this.crdWarnings.push(msg);
    }
  }

  /** The warnings a CRD write gets (decode problems accepted because strictCrdSchemas is off). */
  crdDecodeWarnings(crd: unknown): string[] {
    if (!isObject(crd) || this.options.strictCrdSchemas) return [];
    return crdProblems(crd as KubeObject)
      .filter((p) => p.kind === 'decode')
      .map((p) => `a real apiserver rejects this CRD: ${p.message}`);
  }
}
