/**
 * Watch streams: newline-delimited `{"type","object"}` events. Replays the history after the requested
 * resourceVersion (ERROR 410 Expired and end of stream when it was compacted), sends ADDED for the current objects
 * when watching from "0" or no resourceVersion, periodic BOOKMARKs when asked, selector transitions
 * (an object that stops matching is DELETED for the watcher), timeoutSeconds.
 */
import type { ServerResponse } from 'node:http';
import type { KubeCore } from './core.js';
import { badRequest, expired } from './errors.js';
import { apiVersionOf, grKey, type ResourceType } from './resources.js';
import { type FieldRequirement, type LabelRequirement, matchesFields, matchesLabels } from './selectors.js';
import type { Change } from './store.js';
import type { KubeObject } from './util.js';

export interface WatchRequest {
  rt: ResourceType;
  version: string;
  namespace?: string;
  labels: LabelRequirement[];
  fields: FieldRequirement[];
  resourceVersion?: string;
  allowBookmarks: boolean;
  sendInitialEvents?: boolean;
  timeoutSeconds?: number;
  bookmarkIntervalMs: number;
  /** Re-encodes each event's object (Table watches); `first` is true for the first event of the stream. */
  transform?: (o: KubeObject, first: boolean) => unknown;
}

interface ActiveWatch {
  end(): void;
}

export class WatchHub {
  private readonly active = new Set<ActiveWatch>();

  constructor(private readonly core: KubeCore) {}

  get count(): number {
    return this.active.size;
  }

  /** Validates the request (throwing ApiErrors before any byte is written), then streams until closed. */
  serve(res: ServerResponse, w: WatchRequest): void {
    const { core } = this;
    const gr = grKey(w.rt);
    const namespace = w.rt.namespaced ? w.namespace : undefined;
    const rvParam = w.resourceVersion ?? '';
    let replay: Change[] | undefined;
    let initial: KubeObject[] = [];
    let tooOld: number | undefined;
    if (rvParam === '' || rvParam === '0' || w.sendInitialEvents) {
      initial = core.store.list(gr, namespace);
    } else {
      const rv = Number(rvParam);
      if (!/^\d+$/.test(rvParam))
        throw badRequest(
          `invalid resource version: strconv.ParseUint: parsing ${JSON.stringify(rvParam)}: invalid syntax`,
        );
      replay = core.store.since(rv);
      if (!replay) tooOld = rv;
    }

    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Cache-Control': 'no-cache, private',
      'Transfer-Encoding': 'chunked',
    });
    res.flushHeaders();
    const write = (type: string, object: unknown) => {
      if (!res.writableEnded && !res.destroyed) res.write(`${JSON.stringify({ type, object })}\n`);
    };

    if (tooOld !== undefined) {
      const status = expired(`too old resource version: ${tooOld} (${core.store.compactedRevision + 1})`).toStatus();
      write('ERROR', status);
      res.end();
      return;
    }

    const matches = (o: KubeObject | undefined) =>
      !!o &&
      (namespace === undefined || o.metadata.namespace === namespace) &&
      matchesLabels(w.labels, o.metadata.labels) &&
      matchesFields(w.fields, o);
    let first = true;
    const render = (o: KubeObject) => {
      const rendered = core.render(w.rt, w.version, o);
      if (!w.transform) return rendered;
      const out = w.transform(rendered, first);
      first = false;
      return out;
    };
    const deliver = (c: Change) => {
      if (c.gr !== gr) return;
      const now = matches(c.object);
      const before = c.type !== 'ADDED' && matches(c.prev);
      if (c.type === 'ADDED') {
        if (now) write('ADDED', render(c.object));
      } else if (c.type === 'DELETED') {
        if (matches(c.prev)) write('DELETED', render(c.object));
      } else if (now && before) write('MODIFIED', render(c.object));
      else if (now) write('ADDED', render(c.object));
      else if (before) write('DELETED', render(c.object));
    };

    for (const o of initial) if (matches(o)) write('ADDED', render(o));
    if (replay) for (const c of replay) deliver(c);
    const bookmark = (annotations?: Record<string, string>) =>
      write('BOOKMARK', {
        kind: w.rt.kind,
        apiVersion: apiVersionOf(w.rt.group, w.version),
        metadata: { resourceVersion: String(core.store.resourceVersion), ...(annotations ? { annotations } : {}) },
      });
    if (w.sendInitialEvents && w.allowBookmarks) bookmark({ 'k8s.io/initial-events-end': 'true' });

    const unsubscribe = core.store.subscribe(deliver);
    const timers: NodeJS.Timeout[] = [];
    if (w.allowBookmarks && w.bookmarkIntervalMs > 0) timers.push(setInterval(() => bookmark(), w.bookmarkIntervalMs));
    if (w.timeoutSeconds && w.timeoutSeconds > 0) timers.push(setTimeout(() => watch.end(), w.timeoutSeconds * 1000));

    const watch: ActiveWatch = {
      end: () => {
        if (!this.active.delete(watch)) return;
        unsubscribe();
        for (const t of timers) clearTimeout(t);
        if (!res.writableEnded) res.end();
      },
    };
    this.active.add(watch);
    res.on('close', () => watch.end());
  }

  closeAll(): void {
    for (const w of [...this.active]) w.end();
  }
}
