import { chmod, chown, mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type {
  CoreV1Api,
  V1Container,
  V1KeyToPath,
  V1Pod,
  V1ServiceAccountTokenProjection,
  V1Volume,
  V1VolumeProjection,
} from '@kubernetes/client-node';
import { isNotFound } from './errors.js';
import { podField, resourceField } from './fields.js';

/**
 * A pod's volumes as host folders: hostPath (DirectoryOrCreate made), emptyDir under the pod's folder, and the
 * kubelet-written kinds — secret, configMap, downwardAPI and projected (serviceAccountToken from the TokenRequest API
 * bound to the pod, configMap, secret, downwardAPI sources), which `sync()` keeps current while the pod runs
 * (changed Secrets and ConfigMaps, the token renewed at 80% of its lifetime, as the kubelet does). Files are
 * replaced atomically so a reader never sees a half-written one.
 */
export const SERVICE_ACCOUNT_MOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

interface File {
  content: Buffer;
  mode: number;
}

interface Token {
  token: string;
  /** When to ask for a new one (80% of its lifetime). */
  renewAt: number;
}

export class PodVolumes {
  /** mountPath -> host path, for the container's mounts (subPath applied). */
  readonly mounts = new Map<string, { host: string; readOnly: boolean }>();
  private readonly written = new Map<string, string>();
  private readonly tokens = new Map<string, Token>();

  constructor(
    private readonly core: CoreV1Api,
    private readonly pod: V1Pod,
    /** The pod's own folder (emptyDirs and kubelet-written volumes live under it). */
    readonly dir: string,
  ) {}

  /** Sets up every volume the container mounts; a message while something is missing (the kubelet retries). */
  async prepare(c: V1Container): Promise<string | undefined> {
    for (const m of c.volumeMounts ?? []) {
      const v = this.pod.spec?.volumes?.find((x) => x.name === m.name);
      if (!v) return `volume "${m.name}" is not in the pod spec`;
      let host: string;
      if (v.hostPath) {
        host = v.hostPath.path;
        const exists = await stat(host).then(
          () => true,
          () => false,
        );
        if (!exists && v.hostPath.type === 'DirectoryOrCreate') await mkdir(host, { recursive: true });
        else if (!exists && v.hostPath.type && v.hostPath.type !== 'FileOrCreate')
          return `hostPath type check failed: ${host} is not a ${v.hostPath.type}`;
      } else {
        host = join(this.dir, 'volumes', v.name);
        await mkdir(host, { recursive: true });
        // emptyDir is world-writable, as the kubelet makes it: a container running as another user writes there.
        if (v.emptyDir) await chmod(host, 0o777);
        else {
          const problem = await this.write(v, c);
          if (problem) return problem;
          this.written.set(v.name, host);
        }
      }
      this.mounts.set(m.mountPath, {
        host: m.subPath ? join(host, m.subPath) : host,
        readOnly: Boolean(m.readOnly) || Boolean(v.secret || v.configMap || v.projected || v.downwardAPI),
      });
    }
    return undefined;
  }

  /** Rewrites the kubelet-written volumes whose sources changed (and renews tokens due for it). */
  async sync(c: V1Container): Promise<void> {
    for (const name of this.written.keys()) {
      const v = this.pod.spec!.volumes!.find((x) => x.name === name)!;
      await this.write(v, c).catch(() => undefined);
    }
  }

  /** The host folder of the service-account volume (`kube-api-access-*`) when the container mounts one. */
  get serviceAccountDir(): string | undefined {
    return this.mounts.get(SERVICE_ACCOUNT_MOUNT)?.host;
  }

  private async write(v: V1Volume, c: V1Container): Promise<string | undefined> {
    const files = new Map<string, File>();
    const mode = (v.secret ?? v.configMap ?? v.projected ?? v.downwardAPI)?.defaultMode ?? 0o644;
    const sources: V1VolumeProjection[] = v.projected
      ? (v.projected.sources ?? [])
      : v.secret
        ? [{ secret: { name: v.secret.secretName, items: v.secret.items, optional: v.secret.optional } }]
        : v.configMap
          ? [{ configMap: v.configMap }]
          : v.downwardAPI
            ? [{ downwardAPI: v.downwardAPI }]
            : [];
    if (sources.length === 0) return `volume "${v.name}": this kubelet supports no such volume type`;
    for (const s of sources) {
      const problem = await this.source(s, c, mode, files);
      if (problem) return problem;
    }
    const dir = join(this.dir, 'volumes', v.name);
    for (const [path, f] of files) {
      const file = join(dir, path);
      const current = await readFile(file).catch(() => undefined);
      if (current?.equals(f.content)) continue;
      await mkdir(dirname(file), { recursive: true });
      await writeFile(`${file}.tmp`, f.content, { mode: f.mode });
      // fsGroup owns the files (a 0440 secret is readable by a container running as another user of that group).
      const fsGroup = this.pod.spec?.securityContext?.fsGroup;
      if (fsGroup !== undefined && process.getuid?.() === 0) await chown(`${file}.tmp`, 0, fsGroup);
      await rename(`${file}.tmp`, file);
    }
    return undefined;
  }

  private async source(
    s: V1VolumeProjection,
    c: V1Container,
    mode: number,
    files: Map<string, File>,
  ): Promise<string | undefined> {
    const namespace = this.pod.metadata!.namespace!;
    const keyed = (data: Record<string, Buffer>, items: V1KeyToPath[] | undefined, what: string) => {
      if (!items?.length) {
        for (const [k, content] of Object.entries(data)) files.set(k, { content, mode });
        return undefined;
      }
      for (const i of items) {
        const content = data[i.key];
        if (!content) return `${what}: key "${i.key}" not found`;
        files.set(i.path, { content, mode: i.mode ?? mode });
      }
      return undefined;
    };
    if (s.secret) {
      const name = s.secret.name!;
      try {
        const secret = await this.core.readNamespacedSecret({ namespace, name });
        const data = Object.fromEntries(
          Object.entries(secret.data ?? {}).map(([k, b]) => [k, Buffer.from(b, 'base64')]),
        );
        return keyed(data, s.secret.items, `secret "${name}"`);
      } catch (e) {
        if (!isNotFound(e)) throw e;
        return s.secret.optional ? undefined : `secret "${name}" not found`;
      }
    }
    if (s.configMap) {
      const name = s.configMap.name!;
      try {
        const cm = await this.core.readNamespacedConfigMap({ namespace, name });
        const data: Record<string, Buffer> = {};
        for (const [k, v] of Object.entries(cm.data ?? {})) data[k] = Buffer.from(v);
        for (const [k, v] of Object.entries(cm.binaryData ?? {})) data[k] = Buffer.from(v, 'base64');
        return keyed(data, s.configMap.items, `configmap "${name}"`);
      } catch (e) {
        if (!isNotFound(e)) throw e;
        return s.configMap.optional ? undefined : `configmap "${name}" not found`;
      }
    }
    if (s.downwardAPI) {
      for (const i of s.downwardAPI.items ?? []) {
        const value = i.fieldRef
          ? podField(this.pod, i.fieldRef.fieldPath)
          : i.resourceFieldRef
            ? resourceField(c, i.resourceFieldRef.resource)
            : undefined;
        if (value === undefined) return `downwardAPI: unsupported item ${i.path}`;
        files.set(i.path, { content: Buffer.from(value), mode: i.mode ?? mode });
      }
      return undefined;
    }
    if (s.serviceAccountToken) {
      const token = await this.token(s.serviceAccountToken);
      files.set(s.serviceAccountToken.path, { content: Buffer.from(token), mode });
      return undefined;
    }
    return 'projected volume: unsupported source';
  }

  /** A token for the pod's ServiceAccount, bound to the pod (TokenRequest), renewed at 80% of its lifetime. */
  private async token(p: V1ServiceAccountTokenProjection): Promise<string> {
    const id = `${p.audience ?? ''}/${p.expirationSeconds ?? 3600}`;
    const have = this.tokens.get(id);
    if (have && Date.now() < have.renewAt) return have.token;
    const expirationSeconds = p.expirationSeconds ?? 3600;
    const r = await this.core.createNamespacedServiceAccountToken({
      namespace: this.pod.metadata!.namespace!,
      name: this.pod.spec?.serviceAccountName ?? 'default',
      body: {
        spec: {
          // Empty: the API server's own audiences, as for a projection without `audience`.
          audiences: p.audience ? [p.audience] : [],
          expirationSeconds,
          boundObjectRef: {
            apiVersion: 'v1',
            kind: 'Pod',
            name: this.pod.metadata!.name!,
            uid: this.pod.metadata!.uid,
          },
        },
      },
    });
    const token = r.status!.token;
    const expires = r.status?.expirationTimestamp
      ? new Date(r.status.expirationTimestamp as unknown as string).getTime()
      : Date.now() + expirationSeconds * 1000;
    this.tokens.set(id, { token, renewAt: Date.now() + 0.8 * (expires - Date.now()) });
    return token;
  }
}
