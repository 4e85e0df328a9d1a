import type { CoreV1Api, V1Container, V1Pod } from '@kubernetes/client-node';
import { isNotFound } from './errors.js';
import { podField, resourceField } from './fields.js';

/**
 * A container's environment as the kubelet builds it: envFrom (ConfigMaps and Secrets, with prefix), then env in
 * order, with `$(VAR)` references to variables defined before expanded and valueFrom resolved (fieldRef,
 * resourceFieldRef, configMapKeyRef, secretKeyRef, `optional` honoured). A missing required source is a
 * `CreateContainerConfigError`, returned as `{ waiting }` for the kubelet to retry.
 */
export type EnvResult = { env: Record<string, string> } | { waiting: string };

export async function containerEnv(core: CoreV1Api, pod: V1Pod, c: V1Container): Promise<EnvResult> {
  const namespace = pod.metadata!.namespace!;
  const cache = new Map<string, Record<string, string> | undefined>();
  /** A ConfigMap's or Secret's data, decoded (undefined when absent). */
  const data = async (kind: 'configmap' | 'secret', name: string) => {
    const id = `${kind}/${name}`;
    if (!cache.has(id)) {
      try {
        if (kind === 'configmap') {
          const cm = await core.readNamespacedConfigMap({ namespace, name });
          cache.set(id, { ...cm.data });
        } else {
          const s = await core.readNamespacedSecret({ namespace, name });
          const decoded = Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]);
          cache.set(id, Object.fromEntries(decoded));
        }
      } catch (e) {
        if (!isNotFound(e)) throw e;
        cache.set(id, undefined);
      }
    }
    return cache.get(id);
  };
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    const ref = from.configMapRef ?? from.secretRef;
    const kind = from.configMapRef ? 'configmap' : 'secret';
    if (!ref?.name) continue;
    const values = await data(kind, ref.name);
    if (!values) {
      if (ref.optional) continue;
      return { waiting: `${kind} "${ref.name}" not found` };
    }
    for (const [k, v] of Object.entries(values)) env[`${from.prefix ?? ''}${k}`] = v;
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined) {
      env[e.name] = expand(e.value, env);
      continue;
    }
    const f = e.valueFrom;
    if (!f) {
      env[e.name] = '';
      continue;
    }
    if (f.fieldRef) {
      const v = podField(pod, f.fieldRef.fieldPath);
      if (v === undefined) return { waiting: `unsupported fieldRef ${f.fieldRef.fieldPath} in env ${e.name}` };
      env[e.name] = v;
    } else if (f.resourceFieldRef) {
      env[e.name] = resourceField(c, f.resourceFieldRef.resource);
    } else {
      const ref = f.configMapKeyRef ?? f.secretKeyRef!;
      const kind = f.configMapKeyRef ? 'configmap' : 'secret';
      const v = (await data(kind, ref.name!))?.[ref.key];
      if (v === undefined) {
        if (ref.optional) continue;
        return { waiting: `couldn't find key ${ref.key} in ${kind} ${namespace}/${ref.name}` };
      }
      env[e.name] = v;
    }
  }
  return { env };
}

/** `$(VAR)` expansion as the kubelet does it: defined variables are substituted, `$$(` escapes, others stay. */
export function expand(value: string, env: Record<string, string>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (all, name) =>
    all === '$$' ? '$' : name in env ? env[name]! : all,
  );
}
