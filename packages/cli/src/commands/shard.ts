import { resolve } from 'node:path';
import {
  DEFAULT_LIMITS,
  DOMAINS,
  FITS,
  type ImportSource,
  importShard,
  readImageFolder,
  readLlava,
} from '@fednano/data';
import { loadModelFolder, textLength } from '@fednano/model';
import type { Command } from '../main.js';
import { UsageError } from '../output.js';
import { choice, DEFAULT_MODEL_DIR, intOption } from './shared.js';

const LISTED = 20;

export const shardCommand: Command = {
  summary: "build a client's data shard from its own images: LLaVA-style JSON/JSONL questions or an ImageFolder",
  usage: [
    '--out DIR (--questions FILE.jsonl|FILE.json [--images DIR] | --image-folder ROOT [--question TEXT])',
    '       [--domain auto|fashion|digits|emoji] [--channels auto|grey|rgb] [--fit pad|crop|stretch]',
    '       [--max-images N] [--max-bytes SIZE] [--max-dimension PX] [--skip-invalid] [--force] [--model DIR] [--json]',
    '',
    'Images are fitted to a square and area-resized to 28x28 as the frozen model was pretrained; answers must be',
    "one word of the model's vocabulary. See docs/data.md.",
  ].join('\n'),
  options: {
    out: { type: 'string' },
    questions: { type: 'string' },
    images: { type: 'string' },
    'image-folder': { type: 'string' },
    question: { type: 'string', default: 'what is this ?' },
    domain: { type: 'string', default: 'auto' },
    channels: { type: 'string', default: 'auto' },
    fit: { type: 'string', default: 'pad' },
    'max-images': { type: 'string', default: String(DEFAULT_LIMITS.maxImages) },
    'max-bytes': { type: 'string', default: '2G' },
    'max-dimension': { type: 'string', default: String(DEFAULT_LIMITS.maxDimension) },
    'skip-invalid': { type: 'boolean', default: false },
    force: { type: 'boolean', default: false },
    model: { type: 'string', default: DEFAULT_MODEL_DIR },
  },
  async run(values, out) {
    if (typeof values.out !== 'string') throw new UsageError('--out DIR is required (where the shard is written)');
    const questionsFile = values.questions as string | undefined;
    const folderRoot = values['image-folder'] as string | undefined;
    if ((questionsFile === undefined) === (folderRoot === undefined))
      throw new UsageError('give either --questions FILE (with --images DIR) or --image-folder ROOT');
    if (folderRoot !== undefined && values.images !== undefined)
      throw new UsageError('--images goes with --questions; an --image-folder holds its images itself');
    const limits = {
      maxImages: intOption(values, 'max-images', 1),
      maxBytes: sizeOption(String(values['max-bytes'])),
      maxDimension: intOption(values, 'max-dimension', 1, 65_535),
    };
    const options = {
      domain: choice(values, 'domain', ['auto', ...DOMAINS] as const),
      channels: choice(values, 'channels', ['auto', 'grey', 'rgb'] as const),
      fit: choice(values, 'fit', FITS),
      limits,
      skipInvalid: values['skip-invalid'] === true,
      replace: values.force === true,
    };
    const folder = await loadModelFolder(String(values.model));
    const source: ImportSource =
      questionsFile !== undefined
        ? await readLlava(questionsFile, values.images as string | undefined, limits, options.skipInvalid)
        : await readImageFolder(folderRoot!, String(values.question), limits);
    const target = resolve(values.out);
    const summary = await importShard(target, source, {
      ...options,
      tokenizer: folder.tokenizer,
      maxPromptTokens: textLength(folder.manifest.config) - 1,
    });

    for (const t of summary.types) out.record({ event: 'type', ...t });
    out.record({ event: 'shard', out: target, ...summary });
    out.text(
      `wrote ${target}: ${summary.images} images (${summary.channels === 1 ? 'grey' : 'rgb'}, domain ${summary.domain}), ${summary.questions} questions`,
    );
    out.table(
      ['question type', 'built in', 'questions', 'candidates', 'question'],
      summary.types.map((t) => [t.type, t.builtIn ? 'yes' : 'no', t.questions, t.candidates, t.question]),
    );
    const { hits, misses } = summary.answerVocabulary;
    out.text(`answers in the model's vocabulary: ${hits} of ${hits + misses}`);
    const lists: [string, { where: string; reason: string }[]][] = [
      ['refused images', summary.refusedImages],
      ['refused questions', summary.refusedQuestions],
      ['ignored files', summary.ignoredFiles],
    ];
    for (const [title, list] of lists) {
      if (list.length === 0) continue;
      out.text(`${title}: ${list.length}`);
      for (const r of list.slice(0, LISTED)) out.text(`  ${r.where}: ${r.reason}`);
      if (list.length > LISTED) out.text(`  ... and ${list.length - LISTED} more (--json lists all)`);
    }
    for (const w of summary.warnings) out.text(`warning: ${w}`);
  },
};

/** Bytes, with an optional K, M or G suffix (powers of 1024). */
function sizeOption(raw: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(raw.trim());
  if (!m) throw new UsageError(`--max-bytes must be a size like 500M or 2G, got '${raw}'`);
  const n = Number(m[1]) * 1024 ** ' KMG'.indexOf((m[2] || ' ').toUpperCase());
  if (n < 1) throw new UsageError(`--max-bytes must be at least 1, got '${raw}'`);
  return n;
}
