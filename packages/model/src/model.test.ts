import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadDomain, rng, shuffle, Tokenizer, vqaExamples } from '@fednano/data';
import { DType, LocalSession, tensor } from '@fednano/onnx-graph';
import { IGNORE_INDEX } from './architecture.js';
import { REFERENCE_CONFIG } from './config.js';
import { evaluateVqa } from './evaluate.js';
import {
  loadModelFolder,
  ModelFolderError,
  openModel,
  PART_FILES,
  weightsOf,
  writeModelFolder,
} from './model-folder.js';
import { pretrain, SMOKE_RECIPE } from './pretrain.js';
import { concatTokens } from './runtime.js';
import { captionSequence, int64Batch, pixelBatch, vqaSequence } from './sequences.js';

const REFERENCE_DIR = fileURLToPath(new URL('../../../models/reference', import.meta.url));

describe('sequence layouts', () => {
  const tok = Tokenizer.fromCorpus(['question : what item is this ? answer : coat . a photo of a coat'], {
    required: ['coat'],
  });
  const cfg = { ...REFERENCE_CONFIG, vocabSize: tok.size };
  test('a caption is predicted from the last image position onwards, then end-of-sequence', () => {
    const s = captionSequence(tok, cfg, 'a photo of a coat');
    assert.equal(s.text.length, 16);
    assert.equal(s.targets.length, 32);
    assert.deepEqual(s.targets.slice(15, 21), [...tok.encode('a photo of a coat'), 3]);
    assert.ok(s.targets.slice(0, 15).every((t) => t === IGNORE_INDEX));
  });
  test('a VQA sequence has one target: the answer, at the last prompt position', () => {
    const s = vqaSequence(tok, cfg, 'what item is this ?', 'coat');
    assert.equal(s.targets.filter((t) => t !== IGNORE_INDEX).length, 1);
    assert.equal(s.targets[s.answerPosition], tok.requireId('coat'));
    assert.equal(s.text[s.answerPosition - 16 + 1], tok.requireId('coat'));
    assert.throws(
      () => vqaSequence(tok, cfg, 'what item is this ?', 'zebra'),
      /'zebra' is not in the tokenizer's vocabulary/,
    );
  });
});

describe('the smoke recipe (the full recipe on a few steps)', () => {
  test('trains, exports a verifiable folder, and is deterministic', async () => {
    const dirs = [await mkdtemp(join(tmpdir(), 'fednano-model-')), await mkdtemp(join(tmpdir(), 'fednano-model-'))];
    try {
      const a = await pretrain(SMOKE_RECIPE);
      const manifest = await writeModelFolder(
        dirs[0]!,
        { ...a, recipe: SMOKE_RECIPE },
        { seconds: 0, command: 'test' },
      );
      assert.ok(a.metrics.text.heldOutLoss > 0 && Number.isFinite(a.metrics.caption.heldOutLoss));
      const folder = await loadModelFolder(dirs[0]!);
      assert.equal(folder.tokenizer.size, manifest.config.vocabSize);
      // Weights read back from the exported graphs are the trained ones.
      const back = weightsOf(folder);
      assert.equal(back.size, a.weights.size);
      for (const [k, t] of a.weights) assert.deepEqual(back.get(k)!.data, t.data, k);
      // A second run from the same seed gives byte-identical files.
      const b = await pretrain(SMOKE_RECIPE);
      const again = await writeModelFolder(dirs[1]!, { ...b, recipe: SMOKE_RECIPE }, { seconds: 0, command: 'test' });
      for (const part of Object.keys(PART_FILES) as (keyof typeof PART_FILES)[])
        assert.equal(again.parts[part].sha256, manifest.parts[part].sha256, part);
    } finally {
      for (const d of dirs) await rm(d, { recursive: true, force: true });
    }
  });
});

describe('the committed reference model', () => {
  test('every file matches the manifest and the folder stays under 25 MB', async () => {
    const folder = await loadModelFolder(REFERENCE_DIR);
    let bytes = 0;
    for (const f of [...Object.values(PART_FILES), 'tokenizer.json', 'manifest.json'])
      bytes += (await stat(join(REFERENCE_DIR, f))).size;
    assert.ok(bytes < 25 * 2 ** 20, `${bytes} bytes`);
    const m = folder.manifest;
    assert.equal(m.recipe.name, 'full');
    assert.ok(m.metrics.text.heldOutPerplexity < 10, `perplexity ${m.metrics.text.heldOutPerplexity}`);
    assert.ok(m.paramCounts.llm > m.paramCounts.encoder + m.paramCounts.connector, 'the LM is the largest part');
  });

  test('an altered or missing file is refused with the file named', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fednano-tamper-'));
    try {
      await cp(REFERENCE_DIR, dir, { recursive: true });
      const path = join(dir, 'connector.onnx');
      const bytes = await readFile(path);
      bytes[bytes.length - 1]! ^= 1;
      await writeFile(path, bytes);
      await assert.rejects(
        loadModelFolder(dir),
        (e: unknown) => e instanceof ModelFolderError && /connector\.onnx: sha256 .* does not match/.test(e.message),
      );
      await rm(join(dir, 'llm.onnx'));
      await assert.rejects(loadModelFolder(dir), /llm\.onnx is missing|connector/);
      await rm(join(dir, 'manifest.json'));
      await assert.rejects(loadModelFolder(dir), /cannot read the model manifest/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('per-sample losses do not depend on what else is in the batch (so clients can share a batch)', async () => {
    const folder = await loadModelFolder(REFERENCE_DIR);
    const model = await openModel(folder, 1);
    try {
      const { set, splits } = await loadDomain('fashion');
      const examples = vqaExamples(set, splits.test.slice(0, 3)).slice(0, 3);
      const cfg = folder.manifest.config;
      const run = async (ex: typeof examples) => {
        const seqs = ex.map((e) => vqaSequence(folder.tokenizer, cfg, e.question, e.answer));
        const image = await model.imageTokens(
          pixelBatch(
            set,
            ex.map((e) => e.image),
            cfg,
          ),
        );
        const text = await model.embed(int64Batch(seqs.map((s) => s.text)));
        return Array.from(
          (await model.llm(concatTokens(cfg, image, text), int64Batch(seqs.map((s) => s.targets)))).sampleLoss
            .data as Float32Array,
        );
      };
      const together = await run(examples);
      for (const [i, e] of examples.entries()) assert.ok(Math.abs((await run([e]))[0]! - together[i]!) < 1e-4);
    } finally {
      await model.close();
    }
  });

  test("llm_vjp's gradient matches a finite difference of the loss along a random direction", async () => {
    const folder = await loadModelFolder(REFERENCE_DIR);
    const cfg = folder.manifest.config;
    const fwd = await LocalSession.create(folder.files.llm);
    const bwd = await LocalSession.create(folder.files.llm_vjp);
    try {
      const random = rng(5);
      const n = 2 * cfg.contextLength * cfg.dModel;
      const x = tensor(
        DType.FLOAT,
        [2, cfg.contextLength, cfg.dModel],
        Array.from({ length: n }, () => random() - 0.5),
      );
      const targets = tensor(
        DType.INT64,
        [2, cfg.contextLength],
        Array.from({ length: 2 * cfg.contextLength }, (_, i) => (i % 5 === 0 ? 7 + i : IGNORE_INDEX)),
      );
      const seed = tensor(DType.FLOAT, [2], [1, 0.5]);
      const r = await bwd.run({ inputs_embeds: x, targets, sample_loss_grad: seed });
      const grad = r.grad_inputs_embeds!.data as Float32Array;
      const dir = Array.from({ length: n }, () => random() - 0.5);
      const loss = async (h: number) => {
        const shifted = tensor(
          DType.FLOAT,
          x.dims,
          Array.from(x.data as Float32Array, (v, i) => v + h * dir[i]!),
        );
        const l = (await fwd.run({ inputs_embeds: shifted, targets })).sample_loss!.data as Float32Array;
        return l[0]! + 0.5 * l[1]!;
      };
      const h = 1e-2;
      const numeric = ((await loss(h)) - (await loss(-h))) / (2 * h);
      const analytic = dir.reduce((s, d, i) => s + d * grad[i]!, 0);
      assert.ok(
        Math.abs(numeric - analytic) <= 0.02 * Math.abs(analytic) + 1e-3,
        `numeric ${numeric} analytic ${analytic}`,
      );
    } finally {
      await fwd.close();
      await bwd.close();
    }
  });

  test('zero-shot evaluation runs on downstream questions and reports every question type', async () => {
    const folder = await loadModelFolder(REFERENCE_DIR);
    const model = await openModel(folder, 1);
    try {
      const { set, splits } = await loadDomain('digits');
      const report = await evaluateVqa(model, set, vqaExamples(set, shuffle([...splits.test], rng(1)).slice(0, 20)));
      assert.equal(report.examples, 60);
      assert.deepEqual(report.perType.map((t) => t.type).sort(), ['digits.even', 'digits.large', 'digits.value']);
    } finally {
      await model.close();
    }
  });
});
