import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type AdapterWeights, adapterShapes, initAdapters } from '@fednano/core';
import { loadDomain, rng, vqaExamples, writeShard } from '@fednano/data';
import { evaluateVqa, loadModelFolder, openModel } from '@fednano/model';
import { NatsServer } from '@fednano/service-kit';
import { adapterObject, connectNats, encodeAdapter, ensureStorage, putAdapter, writeInitialRound } from '@fednano/wire';

/**
 * `fednano eval --adapter`: a saved adapter (a file, or an Object Store object) scored on a shard. An identity adapter
 * (B = 0) must score what the frozen model scores on the same questions, by an independent path (evaluateVqa runs
 * the model without adapters); a moved adapter must change the result.
 */
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/fednano.mjs', import.meta.url));
const MODEL = join(ROOT, 'models/reference');
const RANK = 4;
const ALPHA = 8;

function fednano(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd: ROOT });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b) => {
      stdout += b;
    });
    p.stderr.on('data', (b) => {
      stderr += b;
    });
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
const summary = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((r) => r.event === 'summary') as { examples: number; accuracy: number; loss: number };

describe('fednano eval --adapter', () => {
  let dir: string;
  let shard: string;
  let identity: AdapterWeights;
  let frozen: { examples: number; accuracy: number };
  let nats: NatsServer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fednano-eval-adapter-'));
    shard = join(dir, 'held-out');
    const folder = await loadModelFolder(MODEL);
    const { set, splits } = await loadDomain('digits', folder.manifest.recipe.seed);
    const questions = vqaExamples(set, splits.test.slice(0, 24));
    await writeShard(shard, new Map([['digits', set]]), questions);
    const model = await openModel(folder);
    try {
      frozen = await evaluateVqa(model, set, questions);
    } finally {
      await model.close();
    }
    const dModel = folder.manifest.config.dModel;
    identity = initAdapters(dModel, { rank: RANK, alpha: ALPHA }, 5);
    await writeFile(join(dir, 'identity.adapter'), encodeAdapter(identity, adapterShapes(dModel, RANK)));
    const random = rng(9);
    const moved = new Map([...identity].map(([k, v]) => [k, v.map(() => 2 * random() - 1)]));
    await writeFile(join(dir, 'moved.adapter'), encodeAdapter(moved, adapterShapes(dModel, RANK)));
    // The same identity adapter as a federation's round 0 in the Object Store.
    nats = await NatsServer.start();
    const nc = await connectNats({ servers: nats.url, name: 'eval-test' });
    const storage = await ensureStorage(nc);
    const f = { namespace: 'team', federation: 'vqa' };
    const object = adapterObject(f, 0);
    const sha256 = await putAdapter(storage.objects, object, identity, adapterShapes(dModel, RANK));
    await writeInitialRound(storage.kv, f, { dModel, adapter: { rank: RANK, alpha: ALPHA, seed: 5 }, object, sha256 });
    await nc.drain();
  });
  after(async () => {
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('an identity adapter file scores what the frozen model scores on the shard', async () => {
    const r = await fednano(
      'eval',
      ...['--adapter', join(dir, 'identity.adapter'), '--alpha', String(ALPHA), '--shard', shard, '--json'],
    );
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout);
    assert.equal(s.examples, frozen.examples);
    assert.equal(s.accuracy, frozen.accuracy);
    const human = await fednano('eval', '--adapter', join(dir, 'identity.adapter'), '--alpha', '8', '--shard', shard);
    assert.match(human.stdout, /question type\s+examples\s+accuracy/);
    assert.match(human.stdout, new RegExp(`overall [\\d.]+% on ${frozen.examples} questions of ${shard}`));
  });

  test('the Object Store object (checked against its round record) scores as its file; a moved adapter differs', async () => {
    const fromStore = await fednano(
      'eval',
      ...['--adapter', 'team/vqa/round-0', '--nats', nats.url, '--shard', shard, '--json'],
    );
    assert.equal(fromStore.code, 0, fromStore.stderr);
    const fromFile = await fednano(
      'eval',
      ...['--adapter', join(dir, 'identity.adapter'), '--alpha', String(ALPHA), '--shard', shard, '--json'],
    );
    assert.deepEqual(summary(fromStore.stdout).loss, summary(fromFile.stdout).loss);
    const moved = await fednano(
      'eval',
      ...['--adapter', join(dir, 'moved.adapter'), '--alpha', String(ALPHA), '--shard', shard, '--json'],
    );
    assert.equal(moved.code, 0, moved.stderr);
    assert.notEqual(summary(moved.stdout).loss, summary(fromFile.stdout).loss);
  });

  test('what is missing is one clear line: no shard, no alpha, an unreadable shard, an unknown object', async () => {
    const oneLine = (r: { stderr: string }) => assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    const noShard = await fednano('eval', '--adapter', join(dir, 'identity.adapter'), '--alpha', '8');
    assert.equal(noShard.code, 2);
    assert.match(noShard.stderr, /--adapter needs --shard DIR/);
    oneLine(noShard);
    const noAlpha = await fednano('eval', '--adapter', join(dir, 'identity.adapter'), '--shard', shard);
    assert.equal(noAlpha.code, 2);
    assert.match(noAlpha.stderr, /--alpha is needed with an adapter file/);
    const badShard = await fednano('eval', '--adapter', join(dir, 'identity.adapter'), '--alpha', '8', '--shard', dir);
    assert.equal(badShard.code, 1);
    assert.match(badShard.stderr, /shard\.json/);
    oneLine(badShard);
    const unknown = await fednano('eval', '--adapter', 'team/vqa/round-7', '--nats', nats.url, '--shard', shard);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /round 7 of team\/vqa has no aggregated adapter team\/vqa\/round-7/);
    oneLine(unknown);
  });
});
