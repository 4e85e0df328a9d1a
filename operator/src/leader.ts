import type { Logger } from '@fednano/service-kit';
import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { isConflict, isNotFound } from './kube.js';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds?: number;
  renewPeriodMs?: number;
  retryPeriodMs?: number;
}

/**
 * A Lease time as metav1.MicroTime: RFC 3339 with exactly six fractional digits. The API server refuses anything
 * else (400 "cannot parse ... as .000000"), and client-node 1.4 would send a Date with three.
 */
export const microTime = (d: Date): string => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

/**
 * Leader election with a coordination.k8s.io Lease, as client-go does it: take the lease when it is free or expired,
 * renew it while leading (compare-and-swap on resourceVersion), and treat a failed renewal past the lease duration
 * as lost leadership. `run` resolves once this replica leads; `onLost` is called if it stops leading.
 */
export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private lastRenew = 0;

  constructor(
    kc: KubeConfig,
    private readonly o: LeaderElectionOptions,
    private readonly log: Logger,
  ) {
    this.api = kc.makeApiClient(CoordinationV1Api);
  }

  private get duration() {
    return this.o.leaseDurationSeconds ?? 15;
  }

  /** One attempt to take or renew the lease. */
  private async tryAcquire(): Promise<boolean> {
    const now = new Date();
    let lease: V1Lease | undefined;
    try {
      lease = await this.api.readNamespacedLease({ name: this.o.name, namespace: this.o.namespace });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    const spec = {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: this.duration,
      renewTime: microTime(now) as never,
    };
    try {
      if (!lease) {
        await this.api.createNamespacedLease({
          namespace: this.o.namespace,
          body: {
            metadata: { name: this.o.name, namespace: this.o.namespace },
            spec: { ...spec, acquireTime: microTime(now) as never, leaseTransitions: 0 },
          },
        });
        return true;
      }
      const holder = lease.spec?.holderIdentity;
      const renewed = lease.spec?.renewTime ? new Date(lease.spec.renewTime as unknown as string).getTime() : 0;
      const expired = renewed + 1000 * (lease.spec?.leaseDurationSeconds ?? this.duration) < now.getTime();
      if (holder && holder !== this.o.identity && !expired) return false;
      const transitions = (lease.spec?.leaseTransitions ?? 0) + (holder === this.o.identity ? 0 : 1);
      await this.api.replaceNamespacedLease({
        name: this.o.name,
        namespace: this.o.namespace,
        body: {
          ...lease,
          spec: {
            ...lease.spec,
            ...spec,
            leaseTransitions: transitions,
            acquireTime: (holder === this.o.identity ? lease.spec?.acquireTime : microTime(now)) as never,
          },
        },
      });
      return true;
    } catch (e) {
      if (isConflict(e)) return false; // someone else was faster (409 covers AlreadyExists too)
      throw e;
    }
  }

  async run(onLost: () => void): Promise<void> {
    for (;;) {
      if (this.stopped) throw new Error('leader election stopped');
      try {
        if (await this.tryAcquire()) break;
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'leader election: lease request failed');
      }
      await new Promise((r) => setTimeout(r, this.o.retryPeriodMs ?? 2000));
    }
    this.lastRenew = Date.now();
    this.log.info({ lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity }, 'became leader');
    const renew = async () => {
      if (this.stopped) return;
      try {
        if (await this.tryAcquire()) this.lastRenew = Date.now();
        else {
          this.log.error('leader election: another replica holds the lease');
          return onLost();
        }
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'leader election: renewal failed');
        if (Date.now() - this.lastRenew > 1000 * this.duration) return onLost();
      }
      this.timer = setTimeout(renew, this.o.renewPeriodMs ?? 5000);
    };
    this.timer = setTimeout(renew, this.o.renewPeriodMs ?? 5000);
  }

  /** Stops renewing and releases the lease so a successor need not wait for it to expire. */
  async release(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    try {
      const lease = await this.api.readNamespacedLease({ name: this.o.name, namespace: this.o.namespace });
      if (lease.spec?.holderIdentity !== this.o.identity) return;
      await this.api.replaceNamespacedLease({
        name: this.o.name,
        namespace: this.o.namespace,
        body: {
          ...lease,
          spec: {
            ...lease.spec,
            holderIdentity: undefined,
            renewTime: microTime(new Date(0)) as never,
            leaseDurationSeconds: 1,
          },
        },
      });
    } catch {
      // best effort
    }
  }
}
