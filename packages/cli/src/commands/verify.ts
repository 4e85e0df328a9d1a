import { loadModelFolder } from '@fednano/model';
import { decodeModel, LocalSession, tensor } from '@fednano/onnx-graph';
import type { Command } from '../main.js';
import { DEFAULT_MODEL_DIR } from './shared.js';

export const verify: Command = {
  summary: "check a model folder: every file's sha256 against the manifest, every graph loads and runs",
  usage: '[--model DIR] [--json]',
  options: { model: { type: 'string', default: DEFAULT_MODEL_DIR } },
  async run(values, out) {
    const folder = await loadModelFolder(String(values.model));
    const cfg = folder.manifest.config;
    for (const [name, bytes] of Object.entries(folder.files)) {
      const graph = decodeModel(bytes);
      const session = await LocalSession.create(bytes);
      // One sample of zeros through each graph: every input gets its declared shape with batch 1.
      const feeds = Object.fromEntries(
        graph.inputs.map((i) => {
          const dims = i.shape.map((d) => (typeof d === 'number' ? d : d === 'length' ? 4 : 1));
          return [i.name, tensor(i.dtype, dims)];
        }),
      );
      if (feeds.targets) (feeds.targets.data as BigInt64Array).fill(1n);
      const results = await session.run(feeds);
      await session.close();
      out.record({ event: 'part', part: name, bytes: bytes.length, outputs: Object.keys(results) });
      out.text(
        `${name.padEnd(11)} ok  ${bytes.length.toLocaleString('en').padStart(10)} bytes  outputs ${Object.keys(results).join(', ')}`,
      );
    }
    out.record({ event: 'verified', dir: values.model, vocab: folder.tokenizer.size, dModel: cfg.dModel });
    out.text(`verified ${values.model}: hashes match the manifest, all graphs load and run`);
  },
};
