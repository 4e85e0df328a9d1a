/**
 * A user's end-to-end test with @fednano/testcontainers (node:test; run it like the project's suites):
 *
 *   node --import tsx --test packages/testcontainers/examples/my-federation.e2e.ts
 *
 * It runs two rounds of a federation config in containers from the project images, secured as in a cluster, and
 * checks that the global adapter gets better on the held-out questions. Build the images first (README.md).
 * Named .e2e.ts, not .test.ts, so that `npm test` does not run it a second time beside test/testcontainers.e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { FedNanoEnvironment } from '@fednano/testcontainers';

let fed: FedNanoEnvironment;

before(async () => {
  fed = await FedNanoEnvironment.start({
    // The same YAML as `fednano simulate` / `fednano run`: model, adapter, strategy, training, clients and data.
    config: new URL('../../../examples/quickstart.yaml', import.meta.url).pathname,
    modelPath: new URL('../../../models/reference', import.meta.url).pathname,
    // images: { llmHost: 'registry.example.com/fednano/llm-host:0.1.0' },  // defaults: fednano/<name>:0.1.0
    // clientData: { 'client-0': '/srv/shards/hospital-a' },                 // bring your own shard.json folders
    // insecure: true,                                                        // no NKey users, no mTLS
    log: (line) => process.stderr.write(`${line}\n`),
  });
});

after(() => fed?.stop());

test('two rounds of Fisher merging improve the global adapter', { timeout: 10 * 60_000 }, async () => {
  const before = await fed.evaluate(); // the initial adapter (round 0, written by the aggregator)
  const first = await fed.runRound(); // client-agent containers of the round's participants train and publish
  const second = await fed.runRound();
  for (const r of [first, second]) {
    assert.equal(r.accepted.length, 5);
    assert.match(r.adapter.sha256, /^[0-9a-f]{64}$/);
    process.stderr.write(
      `round ${r.round}: accuracy ${r.evaluation?.accuracy.toFixed(3)} in ${r.seconds.toFixed(1)} s\n`,
    );
  }
  assert.ok(second.evaluation!.accuracy > before.accuracy);
});
