import assert from 'node:assert/strict';
import { test } from 'node:test';
import { adapterParams, footprint, LLAVA_15_7B, MINIGPT4_7B } from './footprint.js';

test('published component sizes match their known parameter counts', () => {
  // Vicuna-7B (LLaMA-7B): 6,738,415,616 parameters including both embedding matrices.
  assert.equal(LLAVA_15_7B.llm + LLAVA_15_7B.embeddings, 6_738_415_616);
  // CLIP ViT-L/14-336 vision tower (without the contrastive projection): 303,507,456.
  assert.equal(LLAVA_15_7B.visionEncoder, 303_507_456);
  assert.equal(LLAVA_15_7B.connector, 20_979_712);
  // EVA ViT-g (39 layers) ~ 0.99B plus the Q-Former ~ 0.1B.
  assert.ok(MINIGPT4_7B.visionEncoder > 1.05e9 && MINIGPT4_7B.visionEncoder < 1.12e9, `${MINIGPT4_7B.visionEncoder}`);
});

test("LLaVA-1.5-7B: FedNano's client storage reduction and per-round upload", () => {
  const row = footprint(LLAVA_15_7B);
  assert.ok(Math.abs(row.totalParams - 7.063e9) < 0.01e9);
  // The paper reports about 95% less client storage; counting the embedding table on the client gives 93.5%.
  assert.ok(
    Math.abs(row.storageReductionWithoutEmbeddings - 0.954) < 0.001,
    `${row.storageReductionWithoutEmbeddings}`,
  );
  assert.ok(Math.abs(row.storageReduction - 0.9355) < 0.001, `${row.storageReduction}`);
  const r64 = row.uploads.find((u) => u.rank === 64)!;
  assert.equal(r64.adapterParams, adapterParams(4096, 64));
  assert.ok(r64.percentOfTotal > 0.01 && r64.percentOfTotal < 0.02, `${r64.percentOfTotal}%`);
  assert.equal(r64.withFisherPercent, 2 * r64.percentOfTotal);
});
