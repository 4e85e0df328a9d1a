import { hostname } from 'node:os';
import type { Logger } from '@fednano/service-kit';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { Controller } from './controller.js';
import { ApiRecorder, type Recorder } from './events.js';
import { reconcileFederation } from './federation-controller.js';
import type { Kube } from './kube.js';
import { ClusterKube } from './kube.js';
import { LeaderElector } from './leader.js';
import { type OperatorMetrics, operatorMetrics } from './metrics.js';
import type { OperatorSettings } from './resources.js';
import { reconcileRound } from './round-controller.js';
import type { WatchedRoundStore } from './round-store.js';
import { LABELS } from './types.js';

export interface OperatorOptions {
  settings: OperatorSettings;
  /** '' = every namespace. */
  watchNamespace: string;
  leaderElection?: { namespace: string; name?: string; identity?: string };
  workers?: number;
  log: Logger;
}

/**
 * The operator: informers feed two controllers (Federation, FederationRound); a KV watch on the round records feeds
 * the round controller too, so status follows the aggregator without polling.
 */
export class Operator {
  readonly metrics: OperatorMetrics;
  readonly kube: ClusterKube;
  readonly federations: Controller;
  readonly rounds: Controller;
  private elector?: LeaderElector;
  private stopWatch?: () => void;
  private store?: WatchedRoundStore;
  ready = false;
  /**
   * A replica waiting for the leader Lease. It counts as ready: it is healthy and takes over within a Lease
   * duration, and a Deployment (or `helm install --wait`) would otherwise never see more than one replica available.
   */
  standby = false;

  constructor(
    private readonly kc: KubeConfig,
    /** Opens the NATS side: one connection (NatsRoundStore) or one per federation account (AccountRoundStores). */
    private readonly openStore: (kube: Kube) => Promise<WatchedRoundStore>,
    private readonly o: OperatorOptions,
  ) {
    const controllers: Record<string, Controller> = {};
    this.metrics = operatorMetrics((c) => controllers[c]?.queue.depth ?? 0, ['federation', 'federationround']);
    this.kube = new ClusterKube(kc, o.watchNamespace, (verb) => this.metrics.apiRequests.inc({ verb }));
    this.federations = controllers.federation = new Controller(
      'federation',
      (ns, n) => reconcileFederation(this.deps, ns, n),
      this.metrics,
      o.log,
    );
    this.rounds = controllers.federationround = new Controller(
      'federationround',
      (ns, n) => reconcileRound(this.deps, ns, n),
      this.metrics,
      o.log,
    );
  }

  private deps!: Parameters<typeof reconcileRound>[0];

  async start(): Promise<void> {
    const log = this.o.log;
    if (this.o.leaderElection) {
      const le = this.o.leaderElection;
      this.elector = new LeaderElector(
        this.kc,
        {
          namespace: le.namespace,
          name: le.name ?? 'fednano-operator',
          identity: le.identity ?? `${hostname()}-${process.pid}`,
        },
        log,
      );
      this.standby = true;
      await this.elector.run(() => {
        log.fatal('lost leadership; exiting so that only the leader reconciles');
        process.exit(1);
      });
      this.standby = false;
      this.metrics.leader.set(1);
    }
    const store = await this.openStore(this.kube);
    this.store = store;
    const recorder: Recorder = new ApiRecorder(this.kc, log);
    this.deps = { kube: this.kube, store, recorder, settings: this.o.settings };
    const c = this.kube.caches;
    const fed = (o: KubernetesObject) => this.federations.enqueue(o.metadata?.namespace, o.metadata?.name);
    const round = (o: KubernetesObject) => this.rounds.enqueue(o.metadata?.namespace, o.metadata?.name);
    const roundsOf = (namespace: string | undefined, federation: string | undefined) => {
      if (!namespace || !federation) return;
      for (const r of this.kube.rounds(namespace)) if (r.spec.federationRef.name === federation) round(r);
    };
    for (const verb of ['add', 'update', 'delete'] as const) {
      c.federations.on(verb, (f) => {
        fed(f);
        roundsOf(f.metadata.namespace, f.metadata.name);
      });
      c.rounds.on(verb, (r) => {
        round(r);
        this.federations.enqueue(r.metadata.namespace, r.spec.federationRef.name);
      });
      c.pods.on(verb, (p) => this.rounds.enqueue(p.metadata?.namespace, p.metadata?.labels?.[LABELS.round]));
      c.deployments.on(verb, (d) => {
        this.federations.enqueue(d.metadata?.namespace, d.metadata?.labels?.[LABELS.federation]);
        roundsOf(d.metadata?.namespace, d.metadata?.labels?.[LABELS.federation]);
      });
      c.services.on(verb, (s) =>
        this.federations.enqueue(s.metadata?.namespace, s.metadata?.labels?.[LABELS.federation]),
      );
    }
    for (const informer of Object.values(c))
      informer.on('error', (e: unknown) => {
        log.warn({ err: (e as Error)?.message ?? String(e) }, 'watch ended; the informer restarts it');
        setTimeout(() => informer.start().catch(() => {}), 1000);
      });
    await Promise.all(Object.values(c).map((i) => i.start()));
    // Round records change as the aggregator counts updates: each change reconciles the matching round.
    this.stopWatch = await store.watch((f, n) => {
      if (n === 0) return this.federations.enqueue(f.namespace, f.federation);
      for (const r of this.kube.rounds(f.namespace))
        if (r.spec.federationRef.name === f.federation && r.spec.round === n) round(r);
    });
    this.federations.start(this.o.workers ?? 2);
    this.rounds.start(this.o.workers ?? 4);
    this.ready = true;
    log.info({ watchNamespace: this.o.watchNamespace || '(all)' }, 'operator running');
  }

  async stop(): Promise<void> {
    this.ready = false;
    this.stopWatch?.();
    await Promise.all([this.federations.stop(), this.rounds.stop()]);
    await Promise.all(Object.values(this.kube.caches).map((i) => i.stop()));
    await this.store?.close();
    await this.elector?.release();
    this.metrics.leader.set(0);
  }
}
