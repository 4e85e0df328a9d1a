import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { ControlPlane, controlPlaneProblem } from './support/control-plane.js';
import { RealKubelet, realKubeletProblem } from './support/real-kubelet.js';

/**
 * A real kubelet (v1.36, the pinned build) on Debian's containerd and runc against the real control plane: the Node
 * registers with its system:node client certificate and goes Ready; a Pod of the local pause image and a Pod of a
 * real image from the Docker engine (debian:bookworm-slim or another local stand-in, running sh then sleep) are
 * scheduled onto it, run, write their logs, and are deleted with their containers gone. Skips, saying why, where a
 * prerequisite is missing (scripts/install-tools.sh builds the kubelet, scripts/install-real-kubelet.sh installs
 * containerd, runc, the CNI plugins and the pause image).
 */
const STAND_INS = ['debian:bookworm-slim', 'node:20-bookworm-slim', 'busybox:latest', 'alpine:latest'];

function whyNot(): string | undefined {
  return controlPlaneProblem() ?? realKubeletProblem();
}

/** The first stand-in image the Docker engine has (none where there is no engine). */
function localImage(): string | undefined {
  for (const image of STAND_INS) {
    try {
      execFileSync('docker', ['image', 'inspect', image], { stdio: 'ignore', timeout: 30_000 });
      return image;
    } catch {}
  }
  return undefined;
}

const skip = whyNot();
if (skip)
  process.stderr.write(
    `\n*** SKIPPED test/real-kubelet.e2e.test.ts: ${skip}. This suite runs a real kubelet on containerd against the real control plane. ***\n\n`,
  );

describe('real kubelet on containerd: Node Ready, Pods run and are deleted', {
  skip: skip ? `SKIPPED: ${skip}` : false,
  timeout: 10 * 60_000,
}, () => {
  let cp: ControlPlane;
  let rk: RealKubelet;
  let core: CoreV1Api;
  const NS = 'default';

  const state = () => `${cp.crashed() ?? ''}\n${rk?.crashed() ?? ''}\n${rk?.logs(1500) ?? ''}`;
  const until = async <T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean, ms = 120_000): Promise<T> => {
    const deadline = Date.now() + ms;
    let last: T | undefined;
    let err = '';
    while (Date.now() < deadline) {
      try {
        last = await get();
        if (ok(last)) return last;
      } catch (e) {
        err = (e as Error).message;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.fail(`timed out waiting for ${what}: ${JSON.stringify(last)?.slice(0, 1500)} ${err}\n${state()}`);
  };
  const gone = async (name: string) => {
    try {
      await core.readNamespacedPod({ namespace: NS, name });
      return false;
    } catch (e) {
      if ((e as { code?: number }).code === 404) return true;
      throw e;
    }
  };
  const runPod = async (pod: V1Pod): Promise<V1Pod> => {
    await core.createNamespacedPod({ namespace: NS, body: pod });
    return until(
      `Pod ${pod.metadata!.name} Running and Ready on ${rk.nodeName}`,
      () => core.readNamespacedPod({ namespace: NS, name: pod.metadata!.name! }),
      (p) =>
        p.status?.phase === 'Running' && !!p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
    );
  };
  /** Deletes with the Pod's grace period and waits until the kubelet has confirmed it (the object is gone). */
  const deletePod = async (name: string) => {
    await core.deleteNamespacedPod({ namespace: NS, name });
    await until(`Pod ${name} deleted`, () => gone(name), Boolean);
  };

  before(async () => {
    cp = await ControlPlane.start();
    core = cp.kubeConfig().makeApiClient(CoreV1Api);
    rk = await RealKubelet.start(cp, { nodeName: 'real-0' });
    process.stderr.write(`real kubelet ${rk.nodeName} at ${rk.nodeIP}, containerd ${rk.socket}\n`);
  });

  after(async () => {
    await rk?.stop();
    await cp?.stop();
  });

  test('the Node registers with its client certificate and is Ready', async () => {
    const node = await core.readNode({ name: 'real-0' });
    const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
    assert.equal(ready?.status, 'True', JSON.stringify(node.status?.conditions));
    assert.match(node.status?.nodeInfo?.kubeletVersion ?? '', /^v1\.\d+\.\d+/);
    assert.match(node.status?.nodeInfo?.containerRuntimeVersion ?? '', /^containerd:\/\//);
    assert.deepEqual(
      node.status?.addresses?.find((a) => a.type === 'InternalIP')?.address,
      rk.nodeIP === '127.0.0.1' ? undefined : rk.nodeIP,
    );
    assert.ok(Number(node.status?.allocatable?.pods) > 0);
  });

  test('a Pod of the local pause image runs (sandbox + container, CNI address) and is deleted', async () => {
    const p = await runPod({
      metadata: { name: 'pause' },
      spec: {
        terminationGracePeriodSeconds: 5,
        containers: [{ name: 'pause', image: rk.pauseImage, imagePullPolicy: 'Never' }],
      },
    });
    assert.equal(p.spec?.nodeName, 'real-0', 'placed by kube-scheduler');
    assert.match(p.status?.podIP ?? '', /^10\.244\.\d+\.\d+$/);
    const running = (await rk.tasks()).filter((t) => t.status === 'RUNNING');
    assert.equal(running.length, 2, `sandbox and container tasks: ${JSON.stringify(running)}`);
    await deletePod('pause');
    await until(
      'no running containers',
      () => rk.tasks(),
      (ts) => ts.every((t) => t.status !== 'RUNNING'),
    );
  });

  test('a Pod of a real image from the Docker engine runs its command, logs, and is deleted', async (t) => {
    const image = localImage();
    if (!image) {
      t.skip(`none of ${STAND_INS.join(', ')} is in the Docker engine here (docker images)`);
      return;
    }
    await rk.importDockerImage(image);
    const p = await runPod({
      metadata: { name: 'sleeper' },
      spec: {
        terminationGracePeriodSeconds: 3,
        containers: [
          {
            name: 'main',
            image,
            imagePullPolicy: 'Never',
            // sh traps TERM so deletion is prompt (sleep as PID 1 would ignore it until the grace period ends).
            command: ['sh', '-c', 'trap "exit 0" TERM; echo "real-kubelet-marker $(hostname)"; sleep 3600 & wait'],
          },
        ],
      },
    });
    assert.equal(p.status?.containerStatuses?.[0]?.ready, true);
    const podDir = join(rk.podLogsDir, `${NS}_sleeper_${p.metadata!.uid}`, 'main');
    const log = await until(
      'the container log',
      async () => {
        const files = await readdir(podDir);
        return (await Promise.all(files.map((f) => readFile(join(podDir, f), 'utf8')))).join('');
      },
      (s) => s.includes('real-kubelet-marker'),
      30_000,
    );
    assert.match(log, /real-kubelet-marker sleeper/);
    const started = Date.now();
    await deletePod('sleeper');
    assert.ok(Date.now() - started < 30_000, 'TERM handled, not the grace period run out');
    await until(
      'no running containers',
      () => rk.tasks(),
      (ts) => ts.every((t) => t.status !== 'RUNNING'),
    );
  });
});
