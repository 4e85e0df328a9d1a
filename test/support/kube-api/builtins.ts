/**
 * What the apiserver does for some built-in kinds on writes: defaulting (a subset of the real defaulters and
 * admission plugins), status reset on create, a few validations that catch common client bugs (pod spec
 * immutability, deployment selector/template mismatch, missing containers).
 */
import { badRequest, type FieldError } from './errors.js';
import { matchesLabelSelectorObject } from './selectors.js';
import { deepEqual, isObject, type JsonObject, type KubeObject } from './util.js';

export interface BuiltinContext {
  allocateClusterIP(): string;
  /** Refuse MicroTime fields (Lease acquireTime/renewTime) without exactly 6 fractional digits, as Go decoding does. */
  strictMicroTime?: boolean;
}

/** metav1.MicroTime decodes with RFC3339Micro: exactly six fractional digits (client-node's V1MicroTime writes them). */
function checkMicroTime(kind: string, value: unknown) {
  if (typeof value !== 'string' || /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$/.test(value)) return;
  throw badRequest(
    `${kind} in version "v1" cannot be handled as a ${kind}: parsing time "${value}" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "${value.slice(19)}" as ".000000"`,
  );
}

export interface Hooks {
  /** The status an object gets when created through the main endpoint; 'keep' keeps the request's. */
  initialStatus?: (o: KubeObject) => unknown;
  keepStatusOnCreate?: boolean;
  /** Defaulting, on create (old undefined) and update. */
  defaults?(o: KubeObject, ctx: BuiltinContext, old?: KubeObject): void;
  validate?(o: KubeObject, old?: KubeObject): FieldError[];
}

const obj = (v: unknown): JsonObject => (isObject(v) ? v : {});

function defaultContainers(list: unknown) {
  if (!Array.isArray(list)) return;
  for (const c of list) {
    if (!isObject(c)) continue;
    const image = typeof c.image === 'string' ? c.image : '';
    const tag = image.includes('@') ? 'digest' : (image.split('/').pop()?.split(':')[1] ?? '');
    c.imagePullPolicy ??= tag === '' || tag === 'latest' ? 'Always' : 'IfNotPresent';
    c.terminationMessagePath ??= '/dev/termination-log';
    c.terminationMessagePolicy ??= 'File';
    c.resources ??= {};
    if (Array.isArray(c.ports)) for (const p of c.ports) if (isObject(p)) p.protocol ??= 'TCP';
  }
}

export function defaultPodSpec(spec: JsonObject, isPod: boolean) {
  spec.restartPolicy ??= 'Always';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.securityContext ??= {};
  spec.schedulerName ??= 'default-scheduler';
  if (isPod) {
    spec.serviceAccountName ??= spec.serviceAccount ?? 'default';
    spec.serviceAccount ??= spec.serviceAccountName;
    spec.enableServiceLinks ??= true;
    spec.priority ??= 0;
    spec.preemptionPolicy ??= 'PreemptLowerPriority';
    const tolerations = Array.isArray(spec.tolerations) ? spec.tolerations : [];
    for (const key of ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']) {
      if (!tolerations.some((t) => isObject(t) && t.key === key))
        tolerations.push({ key, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 });
    }
    spec.tolerations = tolerations;
  }
  defaultContainers(spec.containers);
  defaultContainers(spec.initContainers);
}

function qosClass(spec: JsonObject): string {
  const containers = Array.isArray(spec.containers) ? spec.containers.filter(isObject) : [];
  let any = false;
  let guaranteed = containers.length > 0;
  for (const c of containers) {
    const r = obj(c.resources);
    const req = obj(r.requests);
    const lim = obj(r.limits);
    if (Object.keys(req).length || Object.keys(lim).length) any = true;
    for (const res of ['cpu', 'memory']) {
      const l = lim[res];
      const q = req[res] ?? l;
      if (l === undefined || !deepEqual(q, l)) guaranteed = false;
    }
  }
  if (!any) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

function validateContainers(spec: JsonObject, path: string): FieldError[] {
  const errors: FieldError[] = [];
  const containers = spec.containers;
  if (!Array.isArray(containers) || containers.length === 0) {
    errors.push({ type: 'Required', field: `${path}.containers` });
    return errors;
  }
  containers.forEach((c, i) => {
    const co = obj(c);
    if (!co.name) errors.push({ type: 'Required', field: `${path}.containers[${i}].name` });
    if (!co.image) errors.push({ type: 'Required', field: `${path}.containers[${i}].image` });
  });
  return errors;
}

/** Pod spec fields an update may change (pkg/apis/core/validation ValidatePodUpdate). */
function mutablePodSpecView(spec: JsonObject): JsonObject {
  const s = structuredClone(spec);
  for (const list of ['containers', 'initContainers']) {
    const l = s[list];
    if (Array.isArray(l)) for (const c of l) if (isObject(c)) delete c.image;
  }
  delete s.activeDeadlineSeconds;
  delete s.tolerations;
  delete s.terminationGracePeriodSeconds;
  delete s.schedulingGates;
  return s;
}

const POD_UPDATE_FORBIDDEN =
  'pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)';

let clusterIpCounter = 10;

export const HOOKS: Record<string, Hooks> = {
  namespaces: {
    initialStatus: () => ({ phase: 'Active' }),
    defaults(o, _ctx, old) {
      o.metadata.labels = { ...(o.metadata.labels ?? {}), 'kubernetes.io/metadata.name': o.metadata.name! };
      o.spec = old ? old.spec : { finalizers: ['kubernetes'] };
    },
  },
  pods: {
    initialStatus: (o) => ({ phase: 'Pending', qosClass: qosClass(obj(o.spec)) }),
    defaults(o) {
      o.spec = obj(o.spec);
      defaultPodSpec(o.spec as JsonObject, true);
    },
    validate(o, old) {
      const errors = validateContainers(obj(o.spec), 'spec');
      if (old && errors.length === 0) {
        const a = mutablePodSpecView(obj(old.spec));
        const b = mutablePodSpecView(obj(o.spec));
        if (!deepEqual(a, b)) errors.push({ type: 'Forbidden', field: 'spec', detail: POD_UPDATE_FORBIDDEN });
      }
      return errors;
    },
  },
  services: {
    initialStatus: () => ({ loadBalancer: {} }),
    defaults(o, ctx, old) {
      const spec = obj(o.spec);
      o.spec = spec;
      spec.type ??= 'ClusterIP';
      spec.sessionAffinity ??= 'None';
      if (old && !spec.clusterIP) spec.clusterIP = obj(old.spec).clusterIP;
      if (!spec.clusterIP && spec.type !== 'ExternalName') spec.clusterIP = ctx.allocateClusterIP();
      if (spec.clusterIP && spec.type !== 'ExternalName') {
        spec.clusterIPs ??= [spec.clusterIP];
        spec.ipFamilies ??= ['IPv4'];
        spec.ipFamilyPolicy ??= 'SingleStack';
        spec.internalTrafficPolicy ??= 'Cluster';
      }
      if (Array.isArray(spec.ports)) {
        for (const p of spec.ports) {
          if (!isObject(p)) continue;
          p.protocol ??= 'TCP';
          p.targetPort ??= p.port;
        }
      }
    },
    validate(o, old) {
      const spec = obj(o.spec);
      const errors: FieldError[] = [];
      if (
        spec.type !== 'ExternalName' &&
        spec.clusterIP !== 'None' &&
        (!Array.isArray(spec.ports) || !spec.ports.length)
      )
        errors.push({ type: 'Required', field: 'spec.ports' });
      if (old && obj(old.spec).clusterIP && spec.clusterIP !== obj(old.spec).clusterIP)
        errors.push({
          type: 'Invalid',
          field: 'spec.clusterIPs[0]',
          value: spec.clusterIP,
          detail: 'may not change once set',
        });
      return errors;
    },
  },
  secrets: {
    defaults(o) {
      o.type ??= 'Opaque';
      if (isObject(o.stringData)) {
        const data = obj(o.data);
        for (const [k, v] of Object.entries(o.stringData)) data[k] = Buffer.from(String(v)).toString('base64');
        o.data = data;
        delete o.stringData;
      }
    },
  },
  nodes: { keepStatusOnCreate: true },
  'leases.coordination.k8s.io': {
    defaults(o, ctx) {
      if (!ctx.strictMicroTime) return;
      for (const f of ['acquireTime', 'renewTime']) checkMicroTime('Lease', obj(o.spec)[f]);
    },
  },
  // core/v1 Event: fields without omitempty come back even when not sent.
  events: {
    keepStatusOnCreate: true,
    defaults(o) {
      const e = o as JsonObject;
      if (!('eventTime' in e)) e.eventTime = null;
      e.reportingComponent ??= '';
      e.reportingInstance ??= '';
    },
  },
  'deployments.apps': {
    initialStatus: () => ({}),
    defaults(o) {
      const spec = obj(o.spec);
      o.spec = spec;
      spec.replicas ??= 1;
      spec.revisionHistoryLimit ??= 10;
      spec.progressDeadlineSeconds ??= 600;
      spec.strategy ??= { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } };
      const template = obj(spec.template);
      template.spec = obj(template.spec);
      defaultPodSpec(template.spec as JsonObject, false);
      spec.template = template;
    },
    validate(o) {
      const spec = obj(o.spec);
      const errors: FieldError[] = [];
      if (!isObject(spec.selector)) errors.push({ type: 'Required', field: 'spec.selector' });
      const template = obj(spec.template);
      const labels = obj(obj(template.metadata).labels) as Record<string, string>;
      if (isObject(spec.selector) && !matchesLabelSelectorObject(spec.selector, labels))
        errors.push({
          type: 'Invalid',
          field: 'spec.template.metadata.labels',
          value: labels,
          detail: '`selector` does not match template `labels`',
        });
      errors.push(...validateContainers(obj(template.spec), 'spec.template.spec'));
      return errors;
    },
  },
};

export const defaultContext = (): BuiltinContext => ({
  allocateClusterIP: () => {
    const n = clusterIpCounter++;
    return `10.96.${Math.floor(n / 250) % 250}.${(n % 250) + 1}`;
  },
});
