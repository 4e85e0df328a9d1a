/**
 * The resource types the emulated API server serves: the built-in ones (core, apps, coordination, events, rbac,
 * networking, apiextensions) and one per served version of every CustomResourceDefinition.
 */

import { isObject, type KubeObject } from './util.js';
import { CrdSchema, type JSONSchemaProps, type SchemaProblem, schemaProblems } from './validation.js';

export interface PrinterColumn {
  name: string;
  type: string;
  format?: string;
  description?: string;
  priority?: number;
  jsonPath: string;
}

export interface CrdVersion {
  name: string;
  served: boolean;
  storage: boolean;
  schema?: CrdSchema;
  printerColumns: PrinterColumn[];
  statusSubresource: boolean;
  selectableFields: string[];
}

export interface ResourceType {
  group: string;
  /** Served versions, the storage (preferred) version first. */
  versions: string[];
  plural: string;
  singular: string;
  kind: string;
  listKind: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  verbs: string[];
  subresources: string[];
  /** metadata.generation is maintained (1 on create, +1 on spec changes). */
  hasGeneration: boolean;
  /** DELETE answers with the object rather than a Status. */
  returnDeletedObject: boolean;
  /** Selectable fields besides metadata.name and metadata.namespace. */
  fieldSelectors: string[];
  /** Name validation: DNS-1123 subdomain (most), label (namespaces), DNS-1035 label (services). */
  nameFormat: 'subdomain' | 'label' | 'dns1035' | 'path';
  /** For custom resources: the CRD's name and its versions. */
  crd?: { name: string; versions: Map<string, CrdVersion> };
}

export const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

export const grKey = (rt: { group: string; plural: string }) => (rt.group ? `${rt.plural}.${rt.group}` : rt.plural);
export const apiVersionOf = (group: string, version: string) => (group ? `${group}/${version}` : version);

interface BuiltinSpec {
  gv: string;
  plural: string;
  kind: string;
  namespaced?: boolean;
  short?: string[];
  categories?: string[];
  sub?: string[];
  generation?: boolean;
  returnObject?: boolean;
  fields?: string[];
  nameFormat?: ResourceType['nameFormat'];
}

const BUILTINS: BuiltinSpec[] = [
  {
    gv: 'v1',
    plural: 'namespaces',
    kind: 'Namespace',
    namespaced: false,
    short: ['ns'],
    sub: ['status', 'finalize'],
    returnObject: true,
    fields: ['status.phase'],
    nameFormat: 'label',
  },
  {
    gv: 'v1',
    plural: 'pods',
    kind: 'Pod',
    short: ['po'],
    categories: ['all'],
    sub: ['status'],
    returnObject: true,
    fields: [
      'spec.nodeName',
      'spec.restartPolicy',
      'spec.schedulerName',
      'spec.serviceAccountName',
      'spec.hostNetwork',
      'status.phase',
      'status.podIP',
      'status.nominatedNodeName',
    ],
  },
  {
    gv: 'v1',
    plural: 'services',
    kind: 'Service',
    short: ['svc'],
    categories: ['all'],
    sub: ['status'],
    returnObject: true,
    fields: ['spec.clusterIP', 'spec.type'],
    nameFormat: 'dns1035',
  },
  { gv: 'v1', plural: 'secrets', kind: 'Secret', fields: ['type'] },
  { gv: 'v1', plural: 'configmaps', kind: 'ConfigMap', short: ['cm'] },
  { gv: 'v1', plural: 'serviceaccounts', kind: 'ServiceAccount', short: ['sa'] },
  {
    gv: 'v1',
    plural: 'events',
    kind: 'Event',
    short: ['ev'],
    fields: [
      'involvedObject.kind',
      'involvedObject.namespace',
      'involvedObject.name',
      'involvedObject.uid',
      'involvedObject.apiVersion',
      'involvedObject.resourceVersion',
      'involvedObject.fieldPath',
      'reason',
      'reportingComponent',
      'source',
      'type',
    ],
    nameFormat: 'path',
  },
  {
    gv: 'v1',
    plural: 'nodes',
    kind: 'Node',
    namespaced: false,
    short: ['no'],
    sub: ['status'],
    returnObject: true,
    fields: ['spec.unschedulable'],
  },
  {
    gv: 'apps/v1',
    plural: 'deployments',
    kind: 'Deployment',
    short: ['deploy'],
    categories: ['all'],
    sub: ['status'],
    generation: true,
  },
  {
    gv: 'apps/v1',
    plural: 'replicasets',
    kind: 'ReplicaSet',
    short: ['rs'],
    categories: ['all'],
    sub: ['status'],
    generation: true,
  },
  { gv: 'coordination.k8s.io/v1', plural: 'leases', kind: 'Lease' },
  {
    gv: 'apiextensions.k8s.io/v1',
    plural: 'customresourcedefinitions',
    kind: 'CustomResourceDefinition',
    namespaced: false,
    short: ['crd', 'crds'],
    categories: ['api-extensions'],
    sub: ['status'],
    generation: true,
    returnObject: true,
  },
];

export function builtinTypes(): ResourceType[] {
  return BUILTINS.map((b) => {
    const [group, version] = b.gv.includes('/') ? (b.gv.split('/') as [string, string]) : ['', b.gv];
    return {
      group,
      versions: [version],
      plural: b.plural,
      singular: b.kind.toLowerCase(),
      kind: b.kind,
      listKind: `${b.kind}List`,
      namespaced: b.namespaced ?? true,
      shortNames: b.short ?? [],
      categories: b.categories ?? [],
      verbs: ALL_VERBS,
      subresources: b.sub ?? [],
      hasGeneration: b.generation ?? false,
      returnDeletedObject: b.returnObject ?? false,
      fieldSelectors: b.fields ?? [],
      nameFormat: b.nameFormat ?? 'subdomain',
    };
  });
}

// ---- CRDs ----

interface CrdNames {
  plural?: string;
  singular?: string;
  kind?: string;
  listKind?: string;
  shortNames?: string[];
  categories?: string[];
}

interface CrdVersionSpec {
  name?: string;
  served?: boolean;
  storage?: boolean;
  schema?: { openAPIV3Schema?: JSONSchemaProps };
  subresources?: { status?: object; scale?: object };
  additionalPrinterColumns?: PrinterColumn[];
  selectableFields?: { jsonPath: string }[];
}

export interface CrdSpec {
  group?: string;
  names?: CrdNames;
  scope?: string;
  versions?: CrdVersionSpec[];
}

/** The problems a real apiserver would reject this CRD for (see validation.schemaProblems) plus basic spec checks. */
export function crdProblems(crd: KubeObject): SchemaProblem[] {
  const spec = (crd.spec ?? {}) as CrdSpec;
  const out: SchemaProblem[] = [];
  const s = (message: string) => out.push({ kind: 'structural', message });
  if (!spec.group) s('spec.group: Required value');
  if (!spec.names?.plural) s('spec.names.plural: Required value');
  if (!spec.names?.kind) s('spec.names.kind: Required value');
  if (spec.scope !== 'Namespaced' && spec.scope !== 'Cluster')
    s(`spec.scope: Unsupported value: ${JSON.stringify(spec.scope ?? '')}: supported values: "Cluster", "Namespaced"`);
  const versions = spec.versions ?? [];
  if (versions.length === 0)
    s('spec.versions: Invalid value: null: must have exactly one version marked as storage version');
  else if (versions.filter((v) => v.storage).length !== 1)
    s(
      'spec.versions: Invalid value: []apiextensions.CustomResourceDefinitionVersion: must have exactly one version marked as storage version',
    );
  if (spec.group && spec.names?.plural && crd.metadata.name !== `${spec.names.plural}.${spec.group}`)
    s(`metadata.name: Invalid value: ${JSON.stringify(crd.metadata.name)}: must be spec.names.plural+"."+spec.group`);
  versions.forEach((v, i) => {
    const schema = v.schema?.openAPIV3Schema;
    if (!schema) {
      s(`spec.versions[${i}].schema.openAPIV3Schema: Required value: schemas are required`);
      return;
    }
    out.push(
      ...schemaProblems(schema, 'spec.versions.schema.openAPIV3Schema', `spec.versions[${i}].schema.openAPIV3Schema`),
    );
  });
  return out;
}

const DEFAULT_AGE_COLUMN: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

/** One ResourceType for a CRD; throws on a CRD that cannot be served (no group, names or storage version). */
export function crdToResourceType(crd: KubeObject): ResourceType {
  const spec = (crd.spec ?? {}) as CrdSpec;
  const names = spec.names ?? {};
  const versions = new Map<string, CrdVersion>();
  const ordered = [...(spec.versions ?? [])].sort((a, b) => Number(b.storage ?? false) - Number(a.storage ?? false));
  for (const v of ordered) {
    if (!v.name || v.served === false) continue;
    const schema = v.schema?.openAPIV3Schema;
    versions.set(v.name, {
      name: v.name,
      served: true,
      storage: v.storage ?? false,
      schema: schema && isObject(schema) ? new CrdSchema(schema) : undefined,
      printerColumns: v.additionalPrinterColumns?.length ? v.additionalPrinterColumns : [DEFAULT_AGE_COLUMN],
      statusSubresource: v.subresources?.status !== undefined,
      selectableFields: (v.selectableFields ?? []).map((f) => f.jsonPath.replace(/^\./, '')),
    });
  }
  const storage = ordered.find((v) => v.storage);
  if (!spec.group || !names.plural || !names.kind || !storage)
    throw new Error(`CRD ${crd.metadata.name} is incomplete`);
  const first = versions.values().next().value as CrdVersion | undefined;
  return {
    group: spec.group,
    versions: [...versions.keys()],
    plural: names.plural,
    singular: names.singular || names.kind.toLowerCase(),
    kind: names.kind,
    listKind: names.listKind || `${names.kind}List`,
    namespaced: spec.scope !== 'Cluster',
    shortNames: names.shortNames ?? [],
    categories: names.categories ?? [],
    verbs: ALL_VERBS,
    subresources: first?.statusSubresource ? ['status'] : [],
    hasGeneration: true,
    // A deleted custom resource is answered with a Status (Success), as the real server does.
    returnDeletedObject: false,
    fieldSelectors: first?.selectableFields ?? [],
    nameFormat: 'subdomain',
    crd: { name: crd.metadata.name!, versions },
  };
}

export class Registry {
  private readonly types = new Map<string, ResourceType>();

  constructor() {
    for (const t of builtinTypes()) this.types.set(grKey(t), t);
  }

  add(t: ResourceType) {
    this.types.set(grKey(t), t);
  }
  remove(group: string, plural: string) {
    this.types.delete(grKey({ group, plural }));
  }
  all(): ResourceType[] {
    return [...this.types.values()];
  }
  byGR(group: string, plural: string): ResourceType | undefined {
    return this.types.get(grKey({ group, plural }));
  }
  /** The type serving /apis/<group>/<version>/<plural>, if that version is served. */
  lookup(group: string, version: string, plural: string): ResourceType | undefined {
    const t = this.byGR(group, plural);
    return t?.versions.includes(version) ? t : undefined;
  }
  byKind(apiVersion: string, kind: string): ResourceType | undefined {
    const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
    return this.all().find((t) => t.group === group && t.kind === kind && t.versions.includes(version!));
  }
  /** Group → versions (preferred first), for discovery. */
  groups(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const t of this.all()) {
      const vs = out.get(t.group) ?? [];
      for (const v of t.versions) if (!vs.includes(v)) vs.push(v);
      out.set(t.group, vs);
    }
    return out;
  }
  /**
   * Resolves a name as kubectl does: plural, singular, short name or kind, optionally qualified with a group
   * (`deployments.apps`, `fr`, `FederationRound`, `federationrounds.fednano.io`).
   */
  resolve(name: string): ResourceType | undefined {
    const lower = name.toLowerCase();
    const candidates = this.all().filter((t) => {
      const forms = [t.plural, t.singular, t.kind.toLowerCase(), ...t.shortNames];
      return forms.some((f) => f === lower || (t.group && `${f}.${t.group}` === lower));
    });
    // prefer the core group, as kubectl's priority RESTMapper does for `events`
    return candidates.find((t) => t.group === '') ?? candidates[0];
  }
}
