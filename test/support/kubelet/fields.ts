import type { V1Container, V1Pod } from '@kubernetes/client-node';

/**
 * The downward API: a pod field by its fieldPath (env valueFrom.fieldRef and downwardAPI volume items), as the
 * kubelet resolves them. Undefined for a path the kubelet does not support.
 */
export function podField(pod: V1Pod, fieldPath: string): string | undefined {
  const m = pod.metadata ?? {};
  const keyed = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(fieldPath);
  if (keyed) return (keyed[1] === 'labels' ? m.labels : m.annotations)?.[keyed[2]!] ?? '';
  const all = (o: Record<string, string> | undefined) =>
    Object.entries(o ?? {})
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join('\n');
  switch (fieldPath) {
    case 'metadata.name':
      return m.name ?? '';
    case 'metadata.namespace':
      return m.namespace ?? '';
    case 'metadata.uid':
      return m.uid ?? '';
    case 'metadata.labels':
      return all(m.labels);
    case 'metadata.annotations':
      return all(m.annotations);
    case 'spec.nodeName':
      return pod.spec?.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? '';
    case 'status.hostIP':
      return pod.status?.hostIP ?? '';
    case 'status.podIP':
      return pod.status?.podIP ?? '';
    default:
      return undefined;
  }
}

/** resourceFieldRef (limits.cpu, requests.memory, ...): the container's own value, or '0' when it sets none. */
export function resourceField(c: V1Container, resource: string): string {
  const [kind, name] = resource.split('.', 2) as ['limits' | 'requests', string];
  return String(c.resources?.[kind]?.[name] ?? '0');
}
