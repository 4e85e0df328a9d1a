import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/fednano.mjs', import.meta.url));

function fednano(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const jsonLines = (s: string) =>
  s
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('fednano CLI', () => {
  test('usage and unknown commands or options exit 2 with one line', () => {
    const none = fednano();
    assert.equal(none.code, 2);
    assert.match(none.stdout, /usage: fednano <command>/);
    const unknown = fednano('train-everything');
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stderr.trim().split('\n').length, 1);
    assert.match(unknown.stderr, /unknown command 'train-everything'/);
    const badOption = fednano('footprint', '--rank', '8');
    assert.equal(badOption.code, 2);
    assert.match(badOption.stderr, /Unknown option '--rank'; see 'fednano footprint --help'/);
  });

  test('run: a config without a federated method, or no config, is one clear line', async () => {
    const { mkdtemp, readFile, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = await mkdtemp(join(tmpdir(), 'fednano-cli-'));
    const config = join(dir, 'central.yaml');
    await writeFile(
      config,
      (await readFile(join(ROOT, 'test/fixtures/e2e-small.yaml'), 'utf8')).replace(
        'method: federated',
        'method: centralized',
      ),
    );
    const r = fednano('run', config);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /fednano run runs federated training only .*use fednano simulate for baselines/);
    assert.equal(fednano('run').code, 2);
  });

  test('a missing model folder is one clear line without a stack; --debug adds the stack', () => {
    const r = fednano('eval', '--model', '/nonexistent/model');
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /cannot read the model manifest.*npm run model:build/);
    assert.match(fednano('eval', '--model', '/nonexistent/model', '--debug').stderr, /\n\s+at /);
  });

  test('footprint --json: one JSON object per line, LLaVA-1.5-7B storage reduction from layer shapes', () => {
    const r = fednano('footprint', '--json');
    assert.equal(r.code, 0, r.stderr);
    const rows = jsonLines(r.stdout);
    assert.equal(rows.length, 3);
    const llava = rows.find((x) => x.model === 'LLaVA-1.5-7B')!;
    assert.ok(Math.abs((llava.storageReductionWithoutEmbeddings as number) - 0.954) < 0.001);
    assert.match(fednano('footprint').stdout, /client storage cut/);
  });

  test('verify checks the committed model', () => {
    const r = fednano('verify');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /verified models\/reference/);
  });

  test('data-stats and eval print per-client and per-type records', () => {
    const stats = jsonLines(
      fednano('data-stats', '--domain', 'digits', '--clients', '4', '--alpha', '0.3', '--json').stdout,
    );
    assert.equal(stats.length, 4);
    assert.ok(stats.every((s) => s.event === 'client' && (s.count as number) > 0));
    const ev = jsonLines(fednano('eval', '--domains', 'digits', '--images', '5', '--json').stdout);
    assert.equal(ev.at(-1)!.event, 'summary');
    assert.equal(ev.at(-1)!.examples, 15);
  });
});

describe('fednano shard', () => {
  /** Real Twemoji PNGs (the pretraining's emoji source) with LLaVA-style questions: built-in types and one custom. */
  async function emojiFixture() {
    const { copyFile, mkdir, mkdtemp, readFile, writeFile } = await import('node:fs/promises');
    const { createRequire } = await import('node:module');
    const { dirname, join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const pkg = dirname(createRequire(import.meta.url).resolve('emoji-datasource-twitter/package.json'));
    const entries = JSON.parse(await readFile(join(pkg, 'emoji.json'), 'utf8')) as {
      image: string;
      category: string;
      has_img_twitter: boolean;
    }[];
    const pick = (category: string) => entries.filter((e) => e.category === category && e.has_img_twitter).slice(0, 8);
    const chosen = [
      ...pick('Flags').map((e) => ({ ...e, answer: 'flags' })),
      ...pick('Animals & Nature').map((e) => ({ ...e, answer: 'animals' })),
    ];
    const dir = await mkdtemp(join(tmpdir(), 'fednano-cli-shard-'));
    await mkdir(join(dir, 'icons'));
    const lines: string[] = [];
    for (const e of chosen) {
      await copyFile(join(pkg, 'img', 'twitter', '64', e.image), join(dir, 'icons', e.image));
      const pair = (q: string, a: string) => [
        { from: 'human', value: `<image>\n${q}` },
        { from: 'gpt', value: a },
      ];
      const conversations = [
        ...pair('Which category is this emoji?', e.answer),
        ...pair('Is it a flag?', e.answer === 'flags' ? 'Yes.' : 'No.'),
        ...pair('Which category is it?', e.answer),
      ];
      lines.push(JSON.stringify({ id: e.image, image: e.image, conversations }));
    }
    await writeFile(join(dir, 'questions.jsonl'), `${lines.join('\n')}\n`);
    return { dir, files: chosen.map((e) => join(dir, 'icons', e.image)) };
  }

  test('real emoji PNGs: the shard has the pretraining pixels, and a client trains and scores on it', async () => {
    const { readFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { decodeIcon, readShard } = await import('@fednano/data');
    const { adapterShapes, evaluateAdapters, InProcessLlmHost, initAdapters, trainLocal } = await import(
      '@fednano/core'
    );
    const { imageTokenCount, loadModelFolder, openModel } = await import('@fednano/model');
    const { NanoEdgeCache, prepareExamples } = await import('@fednano/simulation');

    const { dir, files } = await emojiFixture();
    const out = join(dir, 'shard');
    const r = fednano(
      'shard',
      '--questions',
      join(dir, 'questions.jsonl'),
      '--images',
      join(dir, 'icons'),
      '--out',
      out,
      '--json',
    );
    assert.equal(r.code, 0, r.stderr);
    const lines = jsonLines(r.stdout);
    const summary = lines.at(-1)!;
    assert.equal(summary.event, 'shard');
    assert.deepEqual([summary.domain, summary.channels, summary.images, summary.questions], ['emoji', 3, 16, 48]);
    assert.deepEqual(
      lines.filter((l) => l.event === 'type').map((t) => [t.type, t.builtIn, t.questions, t.candidates]),
      [
        ['custom.which-category-is-it', false, 16, 2],
        ['emoji.category', true, 16, 9],
        ['emoji.flag', true, 16, 2],
      ],
    );
    assert.deepEqual(summary.answerVocabulary, { hits: 48, misses: 0 });

    // Same bytes as the pretraining pipeline gives these icons, so the encoder sees the statistics it was trained on.
    const shard = await readShard(out);
    const set = shard.sets.get('emoji')!;
    for (const [i, file] of files.entries())
      assert.deepEqual(set.pixels.subarray(i * 2352, (i + 1) * 2352), decodeIcon(await readFile(file)), file);

    // The client-agent's path: NanoEdge examples, one split-training step against the llm-host, then scoring.
    const folder = await loadModelFolder(join(ROOT, 'models/reference'));
    const cfg = folder.manifest.config;
    const model = await openModel(folder);
    const examples = await prepareExamples(new NanoEdgeCache(model), shard.sets, shard.questions).finally(() =>
      model.close(),
    );
    assert.equal(examples.length, 48);
    const host = await InProcessLlmHost.create(
      { modelId: 'test', dModel: cfg.dModel, contextLength: cfg.contextLength, vocabSize: cfg.vocabSize },
      { llm: folder.files.llm, llmVjp: folder.files.llm_vjp },
    );
    try {
      const dims = { imageTokens: imageTokenCount(cfg), contextLength: cfg.contextLength, dModel: cfg.dModel };
      const adapter = { rank: 4, alpha: 8 };
      const start = initAdapters(cfg.dModel, adapter, 1);
      const trained = await trainLocal(host, dims, adapter, start, examples, {
        steps: 2,
        batchSize: 8,
        learningRate: 0.003,
        optimizer: 'adamw',
        seed: 1,
      });
      assert.ok(Number.isFinite(trained.meanLoss) && trained.meanLoss > 0);
      assert.deepEqual([...trained.weights.keys()].sort(), Object.keys(adapterShapes(cfg.dModel, adapter.rank)).sort());
      const scored = await evaluateAdapters(host, dims, adapter, trained.weights, examples);
      assert.equal(scored.examples, 48);
      assert.deepEqual(Object.keys(scored.perType).sort(), [
        'custom.which-category-is-it',
        'emoji.category',
        'emoji.flag',
      ]);
      assert.equal(scored.perType['custom.which-category-is-it']!.examples, 16);
    } finally {
      await host.close();
    }
  });

  test('bad input is one line naming the file; an existing shard needs --force; usage mistakes exit 2', async () => {
    const { rm } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { dir, files } = await emojiFixture();
    const args = ['shard', '--questions', join(dir, 'questions.jsonl'), '--images', join(dir, 'icons')];
    const out = join(dir, 'shard');

    await rm(files[3]!);
    const missing = fednano(...args, '--out', out);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr.trim().split('\n').length, 1);
    assert.ok(missing.stderr.includes(`${files[3]}: image file not found`), missing.stderr);

    const skipped = fednano(...args, '--out', out, '--skip-invalid');
    assert.equal(skipped.code, 0, skipped.stderr);
    assert.match(skipped.stdout, /wrote .*shard: 15 images \(rgb, domain emoji\), 45 questions/);
    assert.match(skipped.stdout, /refused images: 1\n {2}.*: image file not found/);

    const again = fednano(...args, '--out', out, '--skip-invalid');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /shard already exists; pass --force to replace it/);
    assert.equal(fednano(...args, '--out', out, '--skip-invalid', '--force').code, 0);

    assert.equal(fednano('shard', '--out', out).code, 2); // neither --questions nor --image-folder
    const badSize = fednano(...args, '--out', out, '--max-bytes', 'lots');
    assert.equal(badSize.code, 2);
    assert.match(badSize.stderr, /--max-bytes must be a size like 500M or 2G, got 'lots'/);
  });
});
