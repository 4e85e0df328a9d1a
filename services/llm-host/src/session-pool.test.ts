import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadModelFolder } from '@fednano/model';
import { LlmSessionPool } from './session-pool.js';

const REFERENCE_DIR = fileURLToPath(new URL('../../../models/reference', import.meta.url));

describe('LlmSessionPool', () => {
  test("executionProvider 'cuda' without a usable CUDA provider fails with a message that says how to fix it", async () => {
    const folder = await loadModelFolder(REFERENCE_DIR);
    const files = { llm: folder.files.llm, llmVjp: folder.files.llm_vjp };
    let pool: LlmSessionPool | undefined;
    try {
      pool = await LlmSessionPool.create(files, { executionProvider: 'cuda' });
    } catch (e) {
      const message = (e as Error).message;
      assert.match(message, /CUDA execution provider is not available/);
      assert.match(message, /NVIDIA GPU/);
      assert.match(message, /onnxruntime-node with its CUDA binaries/);
      assert.match(message, /ONNXRUNTIME_NODE_INSTALL=skip/);
      return;
    }
    // A machine with a GPU and the CUDA binaries: the pool must then work.
    try {
      assert.equal(pool.size, 1);
    } finally {
      await pool.close();
    }
  });

  test('queues batches while every session is busy; transferInputs moves the batch buffers', async () => {
    const folder = await loadModelFolder(REFERENCE_DIR);
    const { contextLength: t, dModel: d } = folder.manifest.config;
    const pool = await LlmSessionPool.create(
      { llm: folder.files.llm, llmVjp: folder.files.llm_vjp },
      { sessions: 1, intraOpThreads: 1 },
    );
    try {
      const batch = (fill: number) => ({
        batch: 2,
        inputsEmbeds: new Float32Array(2 * t * d).fill(fill),
        targets: new BigInt64Array(2 * t).fill(3n),
        lossWeights: Float32Array.of(1, 0),
      });
      const kept = batch(0.1);
      const moved = batch(0.2);
      const results = await Promise.all([
        pool.forwardBackward(kept),
        pool.forwardBackward(moved, { transferInputs: true }),
        pool.forwardBackward(batch(0.1)),
        pool.score({ ...batch(0.1), positions: [0, t - 1] }),
      ]);
      assert.equal(kept.inputsEmbeds.length, 2 * t * d, 'arrays were detached without transferInputs');
      assert.equal(moved.inputsEmbeds.length, 0, 'transferInputs did not move the buffer');
      assert.deepEqual(results[0], results[2]);
      // loss weight 0 on the second sample: no gradient flows into it
      assert.ok(results[0]!.gradInputsEmbeds.subarray(t * d).every((g) => g === 0));
      assert.ok(results[0]!.gradInputsEmbeds.subarray(0, t * d).some((g) => g !== 0));
      assert.equal(results[3]!.logits.length, 2 * folder.manifest.config.vocabSize);
      assert.deepEqual(results[3]!.sampleLoss, results[0]!.sampleLoss);
    } finally {
      await pool.close();
    }
    await assert.rejects(
      pool.score({ batch: 1, inputsEmbeds: new Float32Array(t * d), targets: new BigInt64Array(t), positions: [0] }),
      /closed/,
    );
  });
});
