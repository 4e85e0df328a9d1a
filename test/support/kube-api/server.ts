/**
 * An emulated Kubernetes API server over real HTTP, for tests and benchmarks: the real `@kubernetes/client-node` and
 * the real `kubectl` talk to it. See README.md for what it does and does not emulate.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { Controllers } from './controllers.js';
import { CRD_GR, type DeleteOptions, type FieldValidation, KubeCore, type WriteOptions } from './core.js';
import { DeploymentController } from './deployments.js';
import {
  apiGroup,
  apiGroupList,
  apiResourceList,
  apiVersions,
  openApiDocument,
  openApiRoot,
  VERSION_INFO,
} from './discovery.js';
import {
  ApiError,
  badRequest,
  detailsOf,
  methodNotAllowed,
  notFound,
  resourceNotFound,
  tooLarge,
  unsupportedMediaType,
} from './errors.js';
import { apiVersionOf, grKey, type ResourceType } from './resources.js';
import { Scheduler } from './scheduler.js';
import { type IncludeObject, partialObjectMetadata, toTable } from './table.js';
import { clone, type JsonObject, type KubeObject } from './util.js';
import { WatchHub } from './watch.js';

export interface KubeApiOptions {
  /** Paths of CRD YAML files to serve from the start (CRDs can also be created through the API). */
  crds?: string[];
  /** 0 (default): a free port. */
  port?: number;
  host?: string;
  /** Interval of BOOKMARK events on watches that allow them (default 1000 ms; the real server: about a minute). */
  bookmarkIntervalMs?: number;
  /** Changes kept for watch resumption; older resourceVersions get 410 Expired (default 10000). */
  historyLimit?: number;
  /** Bind pending pods to the first Ready node matching their nodeSelector (default false). */
  schedulePods?: boolean;
  /** Pods bound to a node stay Terminating after DELETE until deleted with gracePeriodSeconds=0 (default false). */
  podGracefulDeletion?: boolean;
  /**
   * Refuse Lease times with other than six fractional digits with 400, as the real server does (default true;
   * false accepts any date string).
   */
  strictMicroTime?: boolean;
  /**
   * Run a minimal Deployment → ReplicaSet → Pod controller that also reports Deployment/ReplicaSet status from the
   * pods' Ready conditions (default false). Pods are only created: something else (a scheduler, a kubelet) runs them.
   */
  deploymentController?: boolean;
  /** Request body limit; larger bodies get 413 (default 3 MiB, as the real server). */
  maxBodyBytes?: number;
  /** Namespaces to create at start besides default, kube-system, kube-public and kube-node-lease. */
  namespaces?: string[];
  /** Reject CRDs a real apiserver rejects (e.g. a numeric exclusiveMinimum); default: accept, see crdWarnings. */
  strictCrdSchemas?: boolean;
  /** Log each request to stderr (or to the function). Also enabled by KUBE_API_LOG=1. */
  log?: boolean | ((line: string) => void);
}

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';

export interface ChangeEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  /** Group-qualified resource: `pods`, `federationrounds.fednano.io`. */
  resource: string;
  object: KubeObject;
}

const VERBS: Verb[] = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection'];
const SYSTEM_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];
// No protobuf: the clients that remain (client-node; kubectl apply/get/describe/wait/delete of custom resources) send
// JSON. A protobuf body (kubectl create namespace|configmap, kubectl delete of built-ins) gets 415.
const WRITE_TYPES = ['application/json', 'application/yaml'];

interface Route {
  rt: ResourceType;
  version: string;
  namespace?: string;
  name?: string;
  subresource?: string;
  watchPath: boolean;
}

interface Negotiated {
  kind: 'object' | 'table' | 'partial';
  tableVersion: string;
}

function negotiate(accept: string | undefined): Negotiated {
  for (const range of (accept ?? '').split(',')) {
    const params = Object.fromEntries(
      range
        .split(';')
        .slice(1)
        .map((p) => p.trim().split('=') as [string, string]),
    );
    if (params.g !== 'meta.k8s.io') continue;
    if (params.as === 'Table' && (params.v === 'v1' || params.v === 'v1beta1'))
      return { kind: 'table', tableVersion: params.v };
    if (params.as === 'PartialObjectMetadata' || params.as === 'PartialObjectMetadataList')
      return { kind: 'partial', tableVersion: params.v ?? 'v1' };
  }
  return { kind: 'object', tableVersion: 'v1' };
}

const bool = (v: string | null) => v === 'true' || v === '1';

export class KubeApi {
  readonly core: KubeCore;
  private readonly controllers: Controllers;
  private readonly scheduler?: Scheduler;
  private readonly deployments?: DeploymentController;
  private readonly watches: WatchHub;
  private server?: Server;
  private counters = {
    total: 0,
    conflicts: 0,
    byVerb: {} as Record<string, number>,
    byResource: {} as Record<string, number>,
  };
  private readonly log?: (line: string) => void;
  url = '';
  port = 0;

  constructor(private readonly options: KubeApiOptions = {}) {
    this.core = new KubeCore({
      historyLimit: options.historyLimit,
      strictCrdSchemas: options.strictCrdSchemas,
      podGracefulDeletion: options.podGracefulDeletion,
      strictMicroTime: options.strictMicroTime ?? true,
    });
    this.controllers = new Controllers(this.core);
    if (options.schedulePods) this.scheduler = new Scheduler(this.core);
    if (options.deploymentController) this.deployments = new DeploymentController(this.core);
    this.watches = new WatchHub(this.core);
    const log = options.log ?? process.env.KUBE_API_LOG === '1';
    if (log) this.log = typeof log === 'function' ? log : (line) => process.stderr.write(`[kube-api] ${line}\n`);
    const nsType = this.core.registry.byGR('', 'namespaces')!;
    for (const ns of [...SYSTEM_NAMESPACES, ...(options.namespaces ?? [])]) {
      if (!this.core.store.get('namespaces', undefined, ns))
        this.core.create(nsType, 'v1', undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    }
  }

  // ---- lifecycle ----

  async start(): Promise<this> {
    for (const file of this.options.crds ?? []) await this.loadCrds(file);
    const server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        if (!(e instanceof ApiError))
          process.stderr.write(`kube-api: ${req.method} ${req.url}: ${(e as Error).stack ?? e}\n`);
        if (!res.headersSent)
          this.sendError(res, e instanceof ApiError ? e : new ApiError(500, 'InternalError', String(e)));
        else res.destroy();
      });
    });
    server.keepAliveTimeout = 60_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port ?? 0, this.options.host ?? '127.0.0.1', () => resolve());
    });
    const addr = server.address() as AddressInfo;
    this.port = addr.port;
    this.url = `http://${this.options.host ?? '127.0.0.1'}:${addr.port}`;
    return this;
  }

  /** Ends every watch, stops the controllers and the HTTP server. */
  async close(): Promise<void> {
    this.watches.closeAll();
    this.controllers.stop();
    this.scheduler?.stop();
    this.deployments?.stop();
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** Loads (creates) the CRDs of a YAML file, as `kubectl apply -f` would. */
  async loadCrds(file: string): Promise<void> {
    const text = await readFile(file, 'utf8');
    const crdType = this.core.registry.byGR('apiextensions.k8s.io', 'customresourcedefinitions')!;
    for (const doc of parseAllDocuments(text)) {
      const crd = doc.toJS() as KubeObject | null;
      if (crd?.kind !== 'CustomResourceDefinition') continue;
      this.core.create(crdType, 'v1', undefined, crd);
    }
  }

  // ---- kubeconfig ----

  /** A kubeconfig (YAML) for client-node's `KubeConfig.loadFromString` and for kubectl. */
  kubeconfig(namespace = 'default'): string {
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '  - name: kube-api-emulator',
      '    cluster:',
      `      server: ${this.url}`,
      // client-node refuses plain http unless TLS verification is explicitly skipped
      '      insecure-skip-tls-verify: true',
      'users:',
      '  - name: kube-api-emulator',
      '    user:',
      '      token: emulated',
      'contexts:',
      '  - name: kube-api-emulator',
      '    context:',
      '      cluster: kube-api-emulator',
      '      user: kube-api-emulator',
      `      namespace: ${namespace}`,
      'current-context: kube-api-emulator',
      '',
    ].join('\n');
  }

  async writeKubeconfig(path: string, namespace = 'default'): Promise<string> {
    await writeFile(path, this.kubeconfig(namespace), { mode: 0o600 });
    return path;
  }

  // ---- counters (for benchmarks) ----

  get requestCount(): number {
    return this.counters.total;
  }
  /** Responses with status 409 (Conflict and AlreadyExists). */
  get conflictCount(): number {
    return this.counters.conflicts;
  }
  /** Requests per verb (status subresource writes count as update/patch). */
  get requests(): Record<Verb, number> {
    return Object.fromEntries(VERBS.map((v) => [v, this.counters.byVerb[v] ?? 0])) as Record<Verb, number>;
  }
  /** Requests per `verb resource[/subresource]`, e.g. `update federationrounds.fednano.io/status`. */
  get requestsByResource(): Record<string, number> {
    return { ...this.counters.byResource };
  }
  resetCounters(): void {
    this.counters = { total: 0, conflicts: 0, byVerb: {}, byResource: {} };
  }
  get watchCount(): number {
    return this.watches.count;
  }
  get resourceVersion(): string {
    return String(this.core.store.resourceVersion);
  }
  get crdWarnings(): string[] {
    return [...this.core.crdWarnings];
  }

  // ---- direct access (no HTTP, no counters) ----

  private resolve(resource: string): ResourceType {
    const rt = this.core.registry.resolve(resource);
    if (!rt) throw new Error(`kube-api: unknown resource ${resource}`);
    return rt;
  }
  private typeOf(o: KubeObject): ResourceType {
    const rt = this.core.registry.byKind(String(o.apiVersion ?? ''), String(o.kind ?? ''));
    if (!rt) throw new Error(`kube-api: no resource serves ${o.apiVersion} ${o.kind}`);
    return rt;
  }
  private versionOf(rt: ResourceType, o?: KubeObject): string {
    const v = String(o?.apiVersion ?? '')
      .split('/')
      .pop();
    return v && rt.versions.includes(v) ? v : rt.versions[0]!;
  }

  /** A copy of one object; resource is a plural, singular, short name or kind, optionally `.group`-qualified. */
  get<T = KubeObject>(resource: string, namespace: string | undefined, name: string): T | undefined {
    const rt = this.resolve(resource);
    const o = this.core.store.get(grKey(rt), rt.namespaced ? namespace : undefined, name);
    return o ? (clone(this.core.render(rt, rt.versions[0]!, o)) as T) : undefined;
  }

  list<T = KubeObject>(
    resource: string,
    opts: { namespace?: string; labelSelector?: string; fieldSelector?: string } = {},
  ): T[] {
    const rt = this.resolve(resource);
    return this.core
      .list(rt, opts.namespace, opts)
      .items.map((o) => clone(this.core.render(rt, rt.versions[0]!, o)) as T);
  }

  /** Creates through the same path as POST (validation, defaults); throws ApiError. */
  create<T = KubeObject>(obj: T, opts: WriteOptions = {}): T {
    const o = obj as unknown as KubeObject;
    const rt = this.typeOf(o);
    return clone(
      this.core.create(
        rt,
        this.versionOf(rt, o),
        o.metadata?.namespace ?? (rt.namespaced ? 'default' : undefined),
        o,
        opts,
      ),
    ) as T;
  }

  update<T = KubeObject>(obj: T, opts: WriteOptions = {}): T {
    const o = obj as unknown as KubeObject;
    const rt = this.typeOf(o);
    return clone(this.core.update(rt, this.versionOf(rt, o), o.metadata.namespace, o.metadata.name!, o, opts)) as T;
  }

  /** PUT to the status subresource. */
  updateStatus<T = KubeObject>(obj: T, opts: WriteOptions = {}): T {
    const o = obj as unknown as KubeObject;
    const rt = this.typeOf(o);
    return clone(
      this.core.update(rt, this.versionOf(rt, o), o.metadata.namespace, o.metadata.name!, o, {
        ...opts,
        subresource: 'status',
      }),
    ) as T;
  }

  /** A JSON merge patch (or `json`/`strategic` patch) of an object or its status. */
  patch<T = KubeObject>(
    resource: string,
    namespace: string | undefined,
    name: string,
    patch: unknown,
    opts: { type?: 'merge' | 'json' | 'strategic'; subresource?: 'status'; fieldManager?: string } = {},
  ): T {
    const rt = this.resolve(resource);
    const type = {
      merge: 'application/merge-patch+json',
      json: 'application/json-patch+json',
      strategic: 'application/strategic-merge-patch+json',
    }[opts.type ?? 'merge'];
    return clone(
      this.core.patch(rt, rt.versions[0]!, namespace, name, type, JSON.stringify(patch), {
        subresource: opts.subresource,
        fieldManager: opts.fieldManager ?? 'kube-api-test',
      }),
    ) as T;
  }

  delete(resource: string, namespace: string | undefined, name: string, opts: DeleteOptions = {}): void {
    const rt = this.resolve(resource);
    this.core.delete(rt, namespace, name, opts);
  }

  /** Every stored change, synchronously, as it happens. Returns an unsubscribe function. */
  onChange(fn: (e: ChangeEvent) => void): () => void {
    return this.core.store.subscribe((c) => fn({ type: c.type, resource: c.gr, object: c.object }));
  }

  /** Drops the watch history: a watch from any earlier resourceVersion gets 410 Expired. */
  compactHistory(): void {
    this.core.store.compact();
  }

  /** Ends every open watch stream, as an apiserver restart or a watch timeout would (clients re-watch). */
  closeWatches(): void {
    this.watches.closeAll();
  }

  /** Resolves when the garbage collector and namespace/CRD cleanup have nothing left to do. */
  idle(): Promise<void> {
    return this.controllers.idle();
  }

  // ---- HTTP ----

  private count(verb: Verb, rt: ResourceType, sub?: string) {
    this.counters.total++;
    this.counters.byVerb[verb] = (this.counters.byVerb[verb] ?? 0) + 1;
    const k = `${verb} ${grKey(rt)}${sub ? `/${sub}` : ''}`;
    this.counters.byResource[k] = (this.counters.byResource[k] ?? 0) + 1;
  }

  private send(res: ServerResponse, code: number, body: unknown, warnings: string[] = []) {
    const text = JSON.stringify(body);
    const headers: Record<string, string | string[]> = {
      'Content-Type': 'application/json',
      'Cache-Control': 'no-cache, private',
      'Content-Length': String(Buffer.byteLength(text)),
    };
    if (warnings.length) headers.Warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
    res.writeHead(code, headers);
    res.end(text);
  }

  private sendError(res: ServerResponse, e: ApiError, warnings: string[] = []) {
    if (e.code === 409) this.counters.conflicts++;
    this.send(res, e.code, e.toStatus(), warnings);
  }

  private async readBody(req: IncomingMessage): Promise<Buffer> {
    const limit = this.options.maxBodyBytes ?? 3 * 1024 * 1024;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      req.resume();
      throw tooLarge(limit);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > limit) {
        req.resume();
        throw tooLarge(limit);
      }
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  }

  private decode(contentType: string | undefined, buf: Buffer): unknown {
    const type = (contentType ?? 'application/json').split(';')[0]!.trim().toLowerCase();
    const text = buf.toString('utf8');
    if (text.trim() === '') return undefined;
    try {
      if (type === 'application/json' || type === '') return JSON.parse(text);
      if (type === 'application/yaml') return parseYaml(text);
    } catch (e) {
      throw badRequest(`error decoding request body: ${(e as Error).message}`);
    }
    throw unsupportedMediaType(type, WRITE_TYPES);
  }

  private route(segments: string[]): Route | undefined {
    let group = '';
    let rest: string[];
    if (segments[0] === 'api') {
      rest = segments.slice(2);
    } else {
      group = segments[1]!;
      rest = segments.slice(3);
    }
    const version = segments[0] === 'api' ? segments[1]! : segments[2]!;
    let watchPath = false;
    if (rest[0] === 'watch') {
      watchPath = true;
      rest = rest.slice(1);
    }
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      const inner = this.core.registry.lookup(group, version, rest[2]!);
      if (inner?.namespaced) {
        namespace = rest[1];
        rest = rest.slice(2);
      }
    }
    if (rest.length === 0 || rest.length > 3) return undefined;
    const rt = this.core.registry.lookup(group, version, rest[0]!);
    if (!rt) return undefined;
    if (namespace !== undefined && !rt.namespaced) return undefined;
    return { rt, version, namespace, name: rest[1], subresource: rest[2], watchPath };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const started = Date.now();
    if (this.log) {
      res.on('finish', () =>
        this.log!(`${req.method} ${url.pathname}${url.search} ${res.statusCode} ${Date.now() - started}ms`),
      );
    }
    const segments = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const method = req.method ?? 'GET';

    // discovery and friends
    if (
      method === 'GET' &&
      !(segments.length >= 3 && segments[0] === 'api') &&
      !(segments.length >= 4 && segments[0] === 'apis')
    ) {
      const doc = this.discovery(segments, req);
      if (doc !== undefined) return this.send(res, 200, doc);
      if (segments[0] === 'openapi') return this.send(res, 404, resourceNotFound().toStatus());
    }
    const apiPath = (segments[0] === 'api' && segments.length >= 3) || (segments[0] === 'apis' && segments.length >= 4);
    if (!apiPath) {
      if (segments[0] === 'healthz' || segments[0] === 'livez' || segments[0] === 'readyz') {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('ok');
        return;
      }
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('404 page not found\n');
      return;
    }
    const route = this.route(segments);
    if (!route) return this.sendError(res, resourceNotFound());
    const warnings: string[] = [];
    try {
      await this.dispatch(req, res, url, route, warnings);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (res.headersSent) {
        res.end();
        return;
      }
      this.sendError(res, e, warnings);
    }
  }

  /** Discovery, version and OpenAPI documents; undefined when the path is none of them. */
  private discovery(segments: string[], req: IncomingMessage): unknown {
    const reg = this.core.registry;
    const [a, b, c] = segments;
    if (segments.length === 1 && a === 'api') return apiVersions(`${req.socket.localAddress}:${this.port}`);
    if (segments.length === 1 && a === 'apis') return apiGroupList(reg);
    if (segments.length === 2 && a === 'api') return apiResourceList(reg, '', b!);
    if (segments.length === 2 && a === 'apis') return apiGroup(reg, b!);
    if (segments.length === 3 && a === 'apis') return apiResourceList(reg, b!, c!);
    if (segments.length === 1 && a === 'version') return VERSION_INFO;
    if (a === 'openapi' && b === 'v3') {
      if (segments.length === 2) return openApiRoot(reg);
      if (segments[2] === 'api' && segments.length === 4) return openApiDocument(reg, '', segments[3]!);
      if (segments[2] === 'apis' && segments.length === 5) return openApiDocument(reg, segments[3]!, segments[4]!);
    }
    return undefined;
  }

  private writeOptions(url: URL, warnings: string[]): WriteOptions {
    const fv = url.searchParams.get('fieldValidation');
    if (fv && !['Strict', 'Warn', 'Ignore'].includes(fv))
      throw badRequest(
        `fieldValidation: Unsupported value: ${JSON.stringify(fv)}: supported values: "Ignore", "Strict", "Warn"`,
      );
    const dryRun = url.searchParams.getAll('dryRun');
    if (dryRun.some((d) => d !== 'All'))
      throw badRequest(`dryRun: Unsupported value: ${JSON.stringify(dryRun[0])}: supported values: "All"`);
    return {
      dryRun: dryRun.length > 0,
      fieldValidation: (fv as FieldValidation | null) ?? 'Warn',
      fieldManager: url.searchParams.get('fieldManager') ?? undefined,
      force: bool(url.searchParams.get('force')),
      warnings,
    };
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse, url: URL, r: Route, warnings: string[]) {
    const { core } = this;
    const { rt, version, namespace, name, subresource } = r;
    const q = url.searchParams;
    const method = req.method ?? 'GET';
    const accept = negotiate(req.headers.accept);
    const render = (o: KubeObject) => core.render(rt, version, o);
    if (name === undefined && rt.namespaced && namespace === undefined && method !== 'GET') throw methodNotAllowed();
    if (subresource && !(rt.crd ? rt.subresources : rt.subresources).includes(subresource)) throw resourceNotFound();
    const asTable = (
      objects: KubeObject[],
      meta: { resourceVersion?: string; continue?: string; remainingItemCount?: number },
    ) => {
      const t = toTable(rt, version, objects, meta, (q.get('includeObject') as IncludeObject | null) ?? 'Metadata');
      return { ...t, apiVersion: `meta.k8s.io/${accept.tableVersion}` };
    };

    switch (method) {
      case 'GET': {
        if (name === undefined) {
          const watch = r.watchPath || bool(q.get('watch'));
          if (watch) {
            this.count('watch', rt);
            const { labels, fields } = core.selectors(rt, {
              labelSelector: q.get('labelSelector') ?? undefined,
              fieldSelector: q.get('fieldSelector') ?? undefined,
            });
            this.watches.serve(res, {
              rt,
              version,
              namespace,
              labels,
              fields,
              resourceVersion: q.get('resourceVersion') ?? undefined,
              allowBookmarks: bool(q.get('allowWatchBookmarks')),
              sendInitialEvents: bool(q.get('sendInitialEvents')),
              timeoutSeconds: q.get('timeoutSeconds') ? Number(q.get('timeoutSeconds')) : undefined,
              bookmarkIntervalMs: this.options.bookmarkIntervalMs ?? 1000,
              transform:
                accept.kind === 'table'
                  ? (o, first) => {
                      const t = asTable([o], { resourceVersion: o.metadata.resourceVersion });
                      return first ? t : { ...t, columnDefinitions: null };
                    }
                  : accept.kind === 'partial'
                    ? partialObjectMetadata
                    : undefined,
            });
            return;
          }
          this.count('list', rt);
          const result = core.list(rt, namespace, {
            labelSelector: q.get('labelSelector') ?? undefined,
            fieldSelector: q.get('fieldSelector') ?? undefined,
            limit: q.get('limit') ? Number(q.get('limit')) : undefined,
            continue: q.get('continue') ?? undefined,
          });
          const meta = {
            resourceVersion: result.resourceVersion,
            ...(result.continue ? { continue: result.continue, remainingItemCount: result.remainingItemCount } : {}),
          };
          if (accept.kind === 'table') return this.send(res, 200, asTable(result.items, meta));
          if (accept.kind === 'partial')
            return this.send(res, 200, {
              kind: 'PartialObjectMetadataList',
              apiVersion: 'meta.k8s.io/v1',
              metadata: meta,
              items: result.items.map(partialObjectMetadata),
            });
          // typed (built-in) lists carry no apiVersion/kind on their items; unstructured (custom) ones do
          const items = result.items.map((o) => {
            if (rt.crd) return render(o);
            const { apiVersion: _a, kind: _k, ...rest } = o;
            return rest;
          });
          return this.send(res, 200, {
            apiVersion: apiVersionOf(rt.group, version),
            kind: rt.listKind,
            metadata: meta,
            items,
          });
        }
        this.count('get', rt, subresource);
        const o = core.get(rt, namespace, name);
        if (subresource && subresource !== 'status') throw methodNotAllowed();
        if (accept.kind === 'table')
          return this.send(res, 200, asTable([o], { resourceVersion: o.metadata.resourceVersion }));
        if (accept.kind === 'partial') return this.send(res, 200, partialObjectMetadata(o));
        return this.send(res, 200, render(o));
      }

      case 'POST': {
        if (name !== undefined) {
          throw methodNotAllowed();
        }
        this.count('create', rt);
        const body = this.decode(req.headers['content-type'], await this.readBody(req));
        const opts = this.writeOptions(url, warnings);
        if (grKey(rt) === CRD_GR) warnings.push(...core.crdDecodeWarnings(body));
        const created = core.create(rt, version, namespace, body, opts);
        return this.send(res, 201, created, warnings);
      }

      case 'PUT': {
        if (name === undefined) throw methodNotAllowed();
        this.count('update', rt, subresource);
        const body = this.decode(req.headers['content-type'], await this.readBody(req));
        const opts = this.writeOptions(url, warnings);
        if (grKey(rt) === CRD_GR) warnings.push(...core.crdDecodeWarnings(body));
        const updated = core.update(rt, version, namespace, name, body, { ...opts, subresource });
        return this.send(res, 200, updated, warnings);
      }

      case 'PATCH': {
        if (name === undefined) throw methodNotAllowed();
        this.count('patch', rt, subresource);
        const text = (await this.readBody(req)).toString('utf8');
        const opts = this.writeOptions(url, warnings);
        const contentType = req.headers['content-type'] ?? '';
        const existed = core.store.get(grKey(rt), rt.namespaced ? namespace : undefined, name) !== undefined;
        const patched = core.patch(rt, version, namespace, name, contentType, text, { ...opts, subresource });
        return this.send(res, existed ? 200 : 201, patched, warnings);
      }

      case 'DELETE': {
        const text = await this.readBody(req);
        const body = (this.decode(req.headers['content-type'], text) ?? {}) as JsonObject;
        const opts: DeleteOptions = {
          propagationPolicy: (q.get('propagationPolicy') ??
            body.propagationPolicy) as DeleteOptions['propagationPolicy'],
          orphanDependents: q.has('orphanDependents')
            ? bool(q.get('orphanDependents'))
            : (body.orphanDependents as boolean | undefined),
          gracePeriodSeconds: q.has('gracePeriodSeconds')
            ? Number(q.get('gracePeriodSeconds'))
            : (body.gracePeriodSeconds as number | undefined),
          preconditions: body.preconditions as DeleteOptions['preconditions'],
          dryRun: q.getAll('dryRun').includes('All') || (Array.isArray(body.dryRun) && body.dryRun.includes('All')),
        };
        if (name === undefined) {
          this.count('deletecollection', rt);
          const deleted = core.deleteCollection(
            rt,
            namespace,
            { labelSelector: q.get('labelSelector') ?? undefined, fieldSelector: q.get('fieldSelector') ?? undefined },
            opts,
          );
          return this.send(res, 200, {
            apiVersion: apiVersionOf(rt.group, version),
            kind: rt.listKind,
            metadata: { resourceVersion: String(core.store.resourceVersion) },
            items: deleted,
          });
        }
        if (subresource) throw methodNotAllowed();
        this.count('delete', rt);
        const { object, deleted } = core.delete(rt, namespace, name, opts);
        if (!deleted || rt.returnDeletedObject) return this.send(res, 200, object);
        return this.send(res, 200, {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Success',
          details: { ...detailsOf(rt, name), uid: object.metadata.uid },
        });
      }

      default:
        throw methodNotAllowed();
    }
  }
}

/** Starts an emulated API server on 127.0.0.1 (a free port unless `port` is given). */
export async function startKubeApi(options: KubeApiOptions = {}): Promise<KubeApi> {
  return new KubeApi(options).start();
}

export { ApiError, notFound };
