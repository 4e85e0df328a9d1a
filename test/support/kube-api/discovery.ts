/**
 * Discovery (/api, /apis, /apis/<group>, /apis/<group>/<version>, /version) in the legacy (unaggregated) format, and
 * a minimal OpenAPI v3 (/openapi/v3 and one document per group-version) that tells kubectl each PATCH endpoint
 * accepts `fieldValidation`, so that `kubectl apply` validates on the server instead of downloading /openapi/v2.
 * Custom resources' documents carry their schemas (for `kubectl explain`).
 */
import { createHash } from 'node:crypto';
import { apiVersionOf, type Registry, type ResourceType } from './resources.js';

export const VERSION_INFO = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2024-12-11T00:00:00Z',
  goVersion: 'go1.23.3',
  compiler: 'gc',
  platform: 'linux/amd64',
  emulatedBy: 'fednano test/support/kube-api',
};

export function apiVersions(serverAddress: string) {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

function groupEntry(name: string, versions: string[]) {
  const vs = versions.map((version) => ({ groupVersion: `${name}/${version}`, version }));
  return { name, versions: vs, preferredVersion: vs[0] };
}

export function apiGroupList(registry: Registry) {
  const groups = [...registry.groups()]
    .filter(([g]) => g !== '')
    .sort(([a], [b]) => groupOrder(a) - groupOrder(b) || a.localeCompare(b));
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups.map(([g, vs]) => groupEntry(g, vs)) };
}

/** Built-in groups first, as the real server lists them. */
function groupOrder(group: string): number {
  return group.endsWith('.k8s.io') || !group.includes('.') ? 0 : 1;
}

export function apiGroup(registry: Registry, group: string) {
  const versions = registry.groups().get(group);
  if (!versions || group === '') return undefined;
  return { kind: 'APIGroup', apiVersion: 'v1', ...groupEntry(group, versions) };
}

const SUBRESOURCE_VERBS: Record<string, string[]> = {
  status: ['get', 'patch', 'update'],
  finalize: ['update'],
};

const storageVersionHash = (t: ResourceType) =>
  createHash('sha256').update(`${t.group}/${t.versions[0]}/${t.kind}`).digest('base64').slice(0, 11);

export function apiResourceList(registry: Registry, group: string, version: string) {
  const types = registry.all().filter((t) => t.group === group && t.versions.includes(version));
  if (types.length === 0) return undefined;
  const resources: object[] = [];
  for (const t of types.sort((a, b) => a.plural.localeCompare(b.plural))) {
    resources.push({
      name: t.plural,
      singularName: t.singular,
      namespaced: t.namespaced,
      kind: t.kind,
      verbs: t.verbs,
      ...(t.shortNames.length ? { shortNames: t.shortNames } : {}),
      ...(t.categories.length ? { categories: t.categories } : {}),
      storageVersionHash: storageVersionHash(t),
    });
    const subs = t.crd ? (t.crd.versions.get(version)?.statusSubresource ? ['status'] : []) : t.subresources;
    for (const sub of subs) {
      resources.push({
        name: `${t.plural}/${sub}`,
        singularName: '',
        namespaced: t.namespaced,
        kind: t.kind,
        verbs: SUBRESOURCE_VERBS[sub] ?? ['get'],
      });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: apiVersionOf(group, version), resources };
}

// ---- OpenAPI v3 ----

const gvPath = (group: string, version: string) => (group ? `apis/${group}/${version}` : `api/${version}`);

export function openApiRoot(registry: Registry) {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const [group, versions] of registry.groups()) {
    for (const version of versions) {
      const p = gvPath(group, version);
      const hash = createHash('sha256')
        .update(JSON.stringify(openApiDocument(registry, group, version)))
        .digest('hex');
      paths[p] = { serverRelativeURL: `/openapi/v3/${p}?hash=${hash.slice(0, 32).toUpperCase()}` };
    }
  }
  return { paths };
}

const reverseDomain = (group: string) => (group ? group.split('.').reverse().join('.') : 'io.k8s.api.core');

const PATCH_CONTENT = (strategic: boolean) =>
  Object.fromEntries(
    [
      'application/json-patch+json',
      'application/merge-patch+json',
      ...(strategic ? ['application/strategic-merge-patch+json'] : []),
    ].map((t) => [t, { schema: { type: 'object' } }]),
  );

/** One group-version's document: a PATCH operation per resource (with fieldValidation) and the CR schemas. */
export function openApiDocument(registry: Registry, group: string, version: string) {
  const types = registry.all().filter((t) => t.group === group && t.versions.includes(version));
  if (types.length === 0) return undefined;
  const paths: Record<string, object> = {};
  const schemas: Record<string, object> = {};
  for (const t of types) {
    const gvk = { group, version, kind: t.kind };
    const base = `/${gvPath(group, version)}${t.namespaced ? '/namespaces/{namespace}' : ''}/${t.plural}/{name}`;
    const schemaName = `${reverseDomain(group)}.${version}.${t.kind}`;
    paths[base] = {
      patch: {
        operationId: `patch${t.kind}`,
        'x-kubernetes-action': 'patch',
        'x-kubernetes-group-version-kind': gvk,
        parameters: ['dryRun', 'fieldManager', 'fieldValidation', 'force'].map((name) => ({
          name,
          in: 'query',
          schema: { type: name === 'force' ? 'boolean' : 'string', uniqueItems: true },
        })),
        // Built-ins get no strategic-merge content here: kubectl then computes the patch from its compiled-in types.
        requestBody: { content: PATCH_CONTENT(false), required: true },
        responses: {
          '200': {
            description: 'OK',
            content: { 'application/json': { schema: { $ref: `#/components/schemas/${schemaName}` } } },
          },
        },
      },
    };
    const crdSchema = t.crd?.versions.get(version)?.schema?.schema;
    schemas[schemaName] = {
      ...(crdSchema
        ? (openApiSafe(crdSchema) as object)
        : { type: 'object', 'x-kubernetes-preserve-unknown-fields': true }),
      'x-kubernetes-group-version-kind': [gvk],
    };
  }
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: VERSION_INFO.gitVersion },
    paths,
    components: { schemas },
  };
}

/**
 * kube-openapi decodes exclusiveMinimum/exclusiveMaximum as booleans: a numeric bound (JSON Schema 2019 style, which a
 * real apiserver would not even accept in a CRD) is rewritten as minimum + exclusiveMinimum: true so kubectl can parse
 * the document.
 */
function openApiSafe(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(openApiSafe);
  if (typeof v !== 'object' || v === null) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = openApiSafe(x);
  for (const [ex, base] of [
    ['exclusiveMinimum', 'minimum'],
    ['exclusiveMaximum', 'maximum'],
  ] as const) {
    if (typeof out[ex] === 'number') {
      out[base] = out[ex];
      out[ex] = true;
    }
  }
  return out;
}
