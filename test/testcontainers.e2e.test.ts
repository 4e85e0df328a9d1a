import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { FedNanoEnvironment, type FedNanoImages, RoundFailedError, type RoundResult } from '@fednano/testcontainers';
import { buildImage, engineProblem } from './support/images.js';

/**
 * @fednano/testcontainers for real: the quickstart federation (examples/quickstart.yaml: 10 clients, 5 per round,
 * Fisher merging) runs in containers from the project images — NATS with JetStream, the llm-host and the aggregator
 * on a private network, one client-agent container per client per round with its shard mounted — secured as
 * `fednano run` is (NKey users with least-privilege permissions, mutual TLS to the llm-host). Each round ends in an
 * aggregated adapter in the Object Store, scored by the aggregator container on the quickstart's 600 held-out questions
 * (equal to this process's own scoring of it); accuracy is printed.
 * A second federation (test/fixtures/e2e-small.yaml) runs insecure. The reaper is the package's own (no pull).
 *
 * FEDNANO_TC_ROUNDS (default 3) sets the quickstart rounds; FEDNANO_TC_CONFIG another config.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CONFIG = process.env.FEDNANO_TC_CONFIG ?? join(ROOT, 'examples/quickstart.yaml');
const ROUNDS = Number(process.env.FEDNANO_TC_ROUNDS ?? 3);
const execFileAsync = promisify(execFile);

const skip = await engineProblem();
if (skip)
  process.stderr.write(
    `\n*** SKIPPED test/testcontainers.e2e.test.ts: ${skip}. This suite runs a FedNano round in containers (NATS, llm-host, aggregator, client-agents) through @fednano/testcontainers; run it where a docker engine is. ***\n\n`,
  );

const log = (line: string) => process.stderr.write(`testcontainers e2e: ${line}\n`);

/** Containers of a federation still there (by the labels the package puts on them). */
async function leftovers(federation: string): Promise<string[]> {
  const { stdout } = await execFileAsync('docker', [
    'ps',
    '-aq',
    '--filter',
    `label=io.fednano.federation=${federation}`,
  ]);
  return stdout.split('\n').filter(Boolean);
}

function checkRound(r: RoundResult, participants: number) {
  assert.equal(r.accepted.length, participants, `accepted: ${r.accepted.join(', ')}`);
  assert.deepEqual(r.rejected, []);
  assert.match(r.adapter.sha256, /^[0-9a-f]{64}$/);
  assert.match(r.adapter.object, new RegExp(`/round-${r.round}$`));
  assert.ok(
    r.agents.every((a) => a.exitCode === 0),
    JSON.stringify(r.agents),
  );
  // Scored by the aggregator in its container, on the held-out shard mounted there, as under the operator.
  assert.equal(r.evaluationError, undefined);
  assert.equal(r.evaluation?.sha256, r.adapter.sha256, "the aggregator scored this round's adapter");
  const acc = r.evaluation?.accuracy;
  assert.ok(typeof acc === 'number' && acc >= 0 && acc <= 1, `accuracy ${acc}`);
  assert.ok(Number.isFinite(r.trainLoss) && r.trainLoss > 0, `train loss ${r.trainLoss}`);
}

const line = (r: RoundResult) =>
  `round ${r.round}: ${r.seconds.toFixed(1)} s, accuracy ${r.evaluation!.accuracy.toFixed(3)} (loss ${r.evaluation!.loss.toFixed(3)}, train loss ${r.trainLoss.toFixed(3)}), ${r.accepted.length} updates of ${r.updateBytes} B, adapter ${r.adapter.object} sha256 ${r.adapter.sha256}`;

describe('@fednano/testcontainers: rounds in containers', {
  skip: skip ? `SKIPPED: ${skip}` : false,
  timeout: 30 * 60_000,
}, () => {
  let images: FedNanoImages;

  before(async () => {
    const t0 = Date.now();
    images = {
      nats: await buildImage('nats'),
      llmHost: await buildImage('llm-host'),
      aggregator: await buildImage('aggregator'),
      clientAgent: await buildImage('client-agent'),
    };
    log(`images ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${Object.values(images).join(', ')}`);
  });

  describe('the quickstart, secured (NKey users + mTLS)', () => {
    let fed: FedNanoEnvironment | undefined;
    after(async () => {
      const federation = fed?.federation.federation;
      await fed?.stop();
      if (federation) assert.deepEqual(await leftovers(federation), [], 'stop() removes every container');
    });

    test(`${ROUNDS} round(s) to aggregated adapters, accuracy reported${ROUNDS >= 3 ? "; it rises above the initial adapter's" : ''}`, async () => {
      const t0 = Date.now();
      fed = await FedNanoEnvironment.start({ config: CONFIG, images, log });
      assert.ok(fed.identities, 'secured by default');
      assert.equal(fed.reaper, 'ready', 'the package reaper, not a disabled one');
      for (const c of [fed.containers.nats!, fed.containers.llmHost!, fed.containers.aggregator!]) {
        const { stdout } = await execFileAsync('docker', [
          'inspect',
          '-f',
          '{{.Config.User}} {{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}}',
          c.getId(),
        ]);
        assert.equal(stdout.trim(), '65532:65532 [ALL] [no-new-privileges]', 'non-root, no capabilities');
      }
      const initial = await fed.evaluate();
      log(
        `${fed.config.metadata.name}: initial adapter accuracy ${initial.accuracy.toFixed(3)} on ${initial.examples} questions`,
      );
      const perRound = fed.config.spec.participation.clientsPerRound ?? fed.config.spec.simulation.clients;
      const results: RoundResult[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        const r = await fed.runRound();
        checkRound(r, perRound);
        log(line(r));
        results.push(r);
      }
      assert.equal(new Set(results.map((r) => r.adapter.sha256)).size, ROUNDS, 'a new adapter each round');
      const last = results.at(-1)!;
      const final = last.evaluation!.accuracy;
      // The aggregator's score is the one this process computes for the same adapter and questions.
      const own = await fed.evaluate(last.adapter);
      assert.deepEqual(
        { accuracy: final, examples: last.evaluation!.examples },
        { accuracy: own.accuracy, examples: own.examples },
      );
      assert.ok(Math.abs(last.evaluation!.loss - own.loss) < 1e-4, `loss ${last.evaluation!.loss} vs ${own.loss}`);
      if (ROUNDS >= 3) assert.ok(final > initial.accuracy, `accuracy ${initial.accuracy} → ${final}`);
      const mean = results.reduce((s, r) => s + r.seconds, 0) / results.length;
      log(
        `RESULT config=${fed.config.metadata.name} rounds=${ROUNDS} accuracy_initial=${initial.accuracy.toFixed(3)} accuracy_final=${final.toFixed(3)} mean_round_s=${mean.toFixed(1)} total_s=${((Date.now() - t0) / 1000).toFixed(1)}`,
      );
    });
  });

  describe('a small federation, insecure', () => {
    let fed: FedNanoEnvironment | undefined;
    after(() => fed?.stop());

    test('one round with the clients chosen by the test', async () => {
      fed = await FedNanoEnvironment.start({
        config: join(ROOT, 'test/fixtures/e2e-small.yaml'),
        namespace: 'tc-insecure',
        insecure: true,
        images,
        log,
      });
      assert.equal(fed.identities, undefined);
      const r = await fed.runRound({ clients: ['client-0', 'client-2'] });
      checkRound(r, 2);
      assert.deepEqual([...r.accepted].sort(), ['client-0', 'client-2']);
      log(line(r));
    });

    test('a round whose client-agents all fail is reported at once, with their exit codes and logs', async () => {
      assert.ok(fed, 'the round above started the environment');
      await assert.rejects(fed.runRound({ clients: ['nobody'] }), /no data for nobody: not in the config's roster/);
      const t0 = Date.now();
      const failed = await fed.runRound({ clients: ['client-1'], clientAgentArgs: ['--label-noise', '2'] }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(failed instanceof RoundFailedError, String(failed));
      assert.deepEqual(
        failed.agents.map((a) => [a.client, a.exitCode]),
        [['client-1', 2]],
      );
      assert.match(await fed.logTail('client-agent-r2-client-1'), /--label-noise/);
      assert.ok(Date.now() - t0 < 60_000, 'not left to the 600 s deadline');
      assert.equal(fed.round, 1, 'the failed round does not advance the environment');
    });
  });
});
