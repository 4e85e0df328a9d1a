/**
 * Server-side printing: `meta.k8s.io/v1 Table` responses for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`
 * (what `kubectl get` asks for). Custom resources get Name plus their additionalPrinterColumns (simple JSONPath, with
 * the apiextensions-apiserver's cell typing); some built-ins get kubectl's familiar columns, the rest Name and Age.
 */
import type { PrinterColumn, ResourceType } from './resources.js';
import { age, isObject, type JsonObject, type KubeObject } from './util.js';

export interface ColumnDefinition {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

export type IncludeObject = 'None' | 'Metadata' | 'Object';

const NAME_COLUMN: ColumnDefinition = {
  name: 'Name',
  type: 'string',
  format: 'name',
  description:
    'Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names',
  priority: 0,
};

const col = (name: string, type = 'string', priority = 0, description = ''): ColumnDefinition => ({
  name,
  type,
  format: '',
  description,
  priority,
});

const AGE = col(
  'Age',
  'string',
  0,
  'CreationTimestamp is a timestamp representing the server time when this object was created.',
);

// ---- simple JSONPath (what CRD printer columns may use) ----

/** Evaluates `.a.b[0].c`, `[*]` and `[?(@.type=="Ready")]` steps; returns every match. */
export function jsonPath(obj: unknown, path: string): unknown[] {
  const expr = path.trim().replace(/^\{/, '').replace(/\}$/, '').replace(/^\$/, '');
  const steps: string[] = [];
  const re = /\.([^.[\]]+)|\[([^\]]*)\]/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(expr))) steps.push(m[1] !== undefined ? `.${m[1]}` : `[${m[2]}]`);
  let cur: unknown[] = [obj];
  for (const step of steps) {
    const next: unknown[] = [];
    for (const v of cur) {
      if (step.startsWith('.')) {
        const k = step.slice(1);
        if (isObject(v) && v[k] !== undefined) next.push(v[k]);
        continue;
      }
      const inner = step.slice(1, -1).trim();
      if (!Array.isArray(v)) {
        if (isObject(v) && inner.startsWith("'") && v[inner.slice(1, -1)] !== undefined)
          next.push(v[inner.slice(1, -1)]);
        continue;
      }
      if (inner === '*') next.push(...v);
      else if (/^-?\d+$/.test(inner)) {
        const i = Number(inner);
        const x = v[i < 0 ? v.length + i : i];
        if (x !== undefined) next.push(x);
      } else {
        const f = inner.match(/^\?\(@\.([\w.]+)\s*(==|!=)\s*["']?([^"']*)["']?\)$/);
        if (!f) continue;
        for (const x of v) {
          const got = f[1]!.split('.').reduce<unknown>((o, k) => (isObject(o) ? o[k] : undefined), x);
          if ((String(got) === f[3]) === (f[2] === '==')) next.push(x);
        }
      }
    }
    cur = next;
  }
  return cur;
}

/** The cell of one printer column, as the apiextensions-apiserver's cellForJSONValue computes it. */
function crdCell(c: PrinterColumn, o: KubeObject): unknown {
  const results = jsonPath(o, c.jsonPath);
  if (results.length === 0) return null;
  const v = results[0];
  if (v === null || v === undefined) return null;
  switch (c.type) {
    case 'string':
      return typeof v === 'string' ? v : JSON.stringify(v);
    case 'integer':
      return typeof v === 'number' ? Math.trunc(v) : null;
    case 'number':
      return typeof v === 'number' ? v : null;
    case 'boolean':
      return typeof v === 'boolean' ? v : null;
    case 'date':
      return typeof v === 'string' ? age(v) : null;
    default:
      return null;
  }
}

// ---- built-in printers (a subset of kubectl's / the apiserver's printers) ----

interface Printer {
  columns: ColumnDefinition[];
  cells(o: KubeObject): unknown[];
}

const obj = (v: unknown): JsonObject => (isObject(v) ? v : {});
const arr = (v: unknown): JsonObject[] => (Array.isArray(v) ? v.filter(isObject) : []);

function podStatus(o: KubeObject): { ready: string; reason: string; restarts: number } {
  const spec = obj(o.spec);
  const status = obj(o.status);
  let reason = String(status.reason || status.phase || 'Unknown');
  const statuses = arr(status.containerStatuses);
  let ready = 0;
  let restarts = 0;
  let running = false;
  for (const cs of [...statuses].reverse()) {
    restarts += Number(cs.restartCount ?? 0);
    const state = obj(cs.state);
    if (obj(state.waiting).reason) reason = String(obj(state.waiting).reason);
    else if (obj(state.terminated).reason) reason = String(obj(state.terminated).reason);
    else if (isObject(state.terminated)) {
      const t = obj(state.terminated);
      reason = t.signal ? `Signal:${t.signal}` : `ExitCode:${t.exitCode}`;
    } else if (cs.ready && isObject(state.running)) {
      running = true;
      ready++;
    }
  }
  if (reason === 'Completed' && running) reason = 'Running';
  if (o.metadata.deletionTimestamp) reason = status.reason === 'NodeLost' ? 'Unknown' : 'Terminating';
  return { ready: `${ready}/${arr(spec.containers).length}`, reason, restarts };
}

const PRINTERS: Record<string, Printer> = {
  pods: {
    columns: [
      NAME_COLUMN,
      col('Ready', 'string', 0, 'The aggregate readiness state of this pod for accepting traffic.'),
      col('Status', 'string', 0, 'The aggregate status of the containers in this pod.'),
      col('Restarts', 'string', 0, 'The number of times the containers in this pod have been restarted.'),
      AGE,
      col('IP', 'string', 1, 'IP address allocated to the pod. Routable at least within the cluster.'),
      col('Node', 'string', 1, 'Name of the node this pod is running on.'),
      col('Nominated Node', 'string', 1, 'Name of the node this pod is nominated to run on.'),
      col('Readiness Gates', 'string', 1, 'The readiness gates of this pod.'),
    ],
    cells(o) {
      const s = podStatus(o);
      const spec = obj(o.spec);
      const status = obj(o.status);
      return [
        o.metadata.name,
        s.ready,
        s.reason,
        String(s.restarts),
        age(o.metadata.creationTimestamp),
        status.podIP ?? '<none>',
        spec.nodeName ?? '<none>',
        status.nominatedNodeName ?? '<none>',
        '<none>',
      ];
    },
  },
  'deployments.apps': {
    columns: [
      NAME_COLUMN,
      col('Ready', 'string', 0, 'Number of the pod with ready state'),
      col(
        'Up-to-date',
        'string',
        0,
        'Total number of non-terminated pods targeted by this deployment that have the desired template spec.',
      ),
      col(
        'Available',
        'string',
        0,
        'Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.',
      ),
      AGE,
      col('Containers', 'string', 1, 'Names of each container in the template.'),
      col('Images', 'string', 1, 'Images referenced by each container in the template.'),
      col('Selector', 'string', 1, 'Label selector for pods.'),
    ],
    cells(o) {
      const spec = obj(o.spec);
      const status = obj(o.status);
      const containers = arr(obj(obj(spec.template).spec).containers);
      const sel = obj(obj(spec.selector).matchLabels);
      return [
        o.metadata.name,
        `${status.readyReplicas ?? 0}/${spec.replicas ?? 0}`,
        Number(status.updatedReplicas ?? 0),
        Number(status.availableReplicas ?? 0),
        age(o.metadata.creationTimestamp),
        containers.map((c) => c.name).join(','),
        containers.map((c) => c.image).join(','),
        Object.entries(sel)
          .map(([k, v]) => `${k}=${v}`)
          .join(',') || '<none>',
      ];
    },
  },
  namespaces: {
    columns: [NAME_COLUMN, col('Status', 'string', 0, 'The status of the namespace'), AGE],
    cells: (o) => [o.metadata.name, obj(o.status).phase ?? '', age(o.metadata.creationTimestamp)],
  },
  nodes: {
    columns: [
      NAME_COLUMN,
      col('Status', 'string', 0, 'The status of the node'),
      col('Roles', 'string', 0, 'The roles of the node'),
      AGE,
      col('Version', 'string', 0, 'Kubelet Version reported by the node.'),
    ],
    cells(o) {
      const ready = arr(obj(o.status).conditions).find((c) => c.type === 'Ready');
      let s = ready?.status === 'True' ? 'Ready' : ready ? 'NotReady' : 'Unknown';
      if (obj(o.spec).unschedulable) s += ',SchedulingDisabled';
      const roles = Object.keys(o.metadata.labels ?? {})
        .filter((k) => k.startsWith('node-role.kubernetes.io/'))
        .map((k) => k.slice('node-role.kubernetes.io/'.length));
      return [
        o.metadata.name,
        s,
        roles.join(',') || '<none>',
        age(o.metadata.creationTimestamp),
        obj(obj(o.status).nodeInfo).kubeletVersion ?? '',
      ];
    },
  },
  services: {
    columns: [
      NAME_COLUMN,
      col('Type', 'string', 0, 'The type of the service.'),
      col('Cluster-IP', 'string', 0, 'The IP address of the service.'),
      col('External-IP', 'string', 0, 'The external IP address of the service.'),
      col('Port(s)', 'string', 0, 'The ports of the service.'),
      AGE,
      col('Selector', 'string', 1, 'The selector of the service.'),
    ],
    cells(o) {
      const spec = obj(o.spec);
      const ports = arr(spec.ports).map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ''}/${p.protocol ?? 'TCP'}`);
      return [
        o.metadata.name,
        spec.type ?? 'ClusterIP',
        spec.clusterIP ?? '<none>',
        '<none>',
        ports.join(',') || '<none>',
        age(o.metadata.creationTimestamp),
        Object.entries(obj(spec.selector))
          .map(([k, v]) => `${k}=${v}`)
          .join(',') || '<none>',
      ];
    },
  },
  configmaps: {
    columns: [NAME_COLUMN, col('Data', 'integer', 0, 'Number of data entries'), AGE],
    cells: (o) => [
      o.metadata.name,
      Object.keys(obj(o.data)).length + Object.keys(obj(o.binaryData)).length,
      age(o.metadata.creationTimestamp),
    ],
  },
  secrets: {
    columns: [NAME_COLUMN, col('Type'), col('Data', 'integer'), AGE],
    cells: (o) => [
      o.metadata.name,
      o.type ?? 'Opaque',
      Object.keys(obj(o.data)).length,
      age(o.metadata.creationTimestamp),
    ],
  },
  'leases.coordination.k8s.io': {
    columns: [NAME_COLUMN, col('Holder', 'string', 0, 'The holder of the lease'), AGE],
    cells: (o) => [o.metadata.name, obj(o.spec).holderIdentity ?? '', age(o.metadata.creationTimestamp)],
  },
  events: {
    columns: [
      col('Last Seen', 'string'),
      col('Type', 'string'),
      col('Reason', 'string'),
      col('Object', 'string'),
      col('Message', 'string'),
      { ...NAME_COLUMN, priority: 1 },
    ],
    cells(o) {
      const io = obj(o.involvedObject);
      const last = (o.lastTimestamp ?? o.eventTime ?? o.metadata.creationTimestamp) as string | undefined;
      return [
        age(last),
        o.type ?? '',
        o.reason ?? '',
        `${String(io.kind ?? '').toLowerCase()}/${io.name ?? ''}`,
        o.message ?? '',
        o.metadata.name,
      ];
    },
  },
  'customresourcedefinitions.apiextensions.k8s.io': {
    columns: [NAME_COLUMN, col('Created At', 'date', 0, 'CreationTimestamp of the CustomResourceDefinition.')],
    cells: (o) => [o.metadata.name, o.metadata.creationTimestamp],
  },
};

const DEFAULT_PRINTER: Printer = {
  columns: [NAME_COLUMN, AGE],
  cells: (o) => [o.metadata.name, age(o.metadata.creationTimestamp)],
};

function printerFor(rt: ResourceType, version: string): Printer {
  const crdVersion = rt.crd?.versions.get(version);
  if (crdVersion) {
    const columns = crdVersion.printerColumns;
    return {
      columns: [
        NAME_COLUMN,
        ...columns.map((c) => ({
          name: c.name,
          type: c.type,
          format: c.format ?? '',
          description: c.description ?? '',
          priority: c.priority ?? 0,
        })),
      ],
      cells: (o) => [o.metadata.name, ...columns.map((c) => crdCell(c, o))],
    };
  }
  const key = rt.group ? `${rt.plural}.${rt.group}` : rt.plural;
  return PRINTERS[key] ?? DEFAULT_PRINTER;
}

export const partialObjectMetadata = (o: KubeObject) => ({
  kind: 'PartialObjectMetadata',
  apiVersion: 'meta.k8s.io/v1',
  metadata: o.metadata,
});

export function toTable(
  rt: ResourceType,
  version: string,
  objects: KubeObject[],
  meta: { resourceVersion?: string; continue?: string; remainingItemCount?: number },
  includeObject: IncludeObject = 'Metadata',
  withColumns = true,
) {
  const printer = printerFor(rt, version);
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: meta,
    ...(withColumns ? { columnDefinitions: printer.columns } : {}),
    rows: objects.map((o) => ({
      cells: printer.cells(o),
      ...(includeObject === 'None' ? {} : { object: includeObject === 'Object' ? o : partialObjectMetadata(o) }),
    })),
  };
}
