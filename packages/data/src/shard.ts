import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type Domain, IMAGE_SIZE, type ImageSet, subset } from './images.js';
import { QUESTION_TYPES, type VqaExample } from './vqa.js';

/**
 * One client's local data on disk, as a client-agent reads it from its data volume: the images its questions refer
 * to (raw pixel bytes per domain) and the questions (JSON), in the order they were assigned.
 */
const FORMAT = 'fednano-shard/v1';

/** A per-shard question type: one the built-in QUESTION_TYPES do not have, with its closed answer set. */
export interface ShardQuestionType {
  id: string;
  domain: Domain;
  question: string;
  answers: string[];
}

interface ShardIndex {
  format: string;
  domains: { domain: Domain; channels: 1 | 3; classNames: string[]; images: number; labels: number[] }[];
  /** Optional: custom question types (absent in shards with built-in types only). */
  questionTypes?: ShardQuestionType[];
  questions: VqaExample[];
}

export class ShardError extends Error {
  override name = 'ShardError';
}

/**
 * Writes the questions and only the images they use; image indices are renumbered into the shard's own sets.
 * Questions that carry `answers` (custom types) are stored with their type's answer set once, in `questionTypes`.
 */
export async function writeShard(
  dir: string,
  sets: ReadonlyMap<Domain, ImageSet>,
  questions: readonly VqaExample[],
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const index: ShardIndex = { format: FORMAT, domains: [], questions: [] };
  const renumber = new Map<string, number>();
  for (const [domain, set] of sets) {
    const used = [...new Set(questions.filter((q) => q.domain === domain).map((q) => q.image))];
    used.forEach((img, k) => {
      renumber.set(`${domain}:${img}`, k);
    });
    const own = subset(set, used);
    await writeFile(join(dir, `${domain}.pixels`), own.pixels);
    index.domains.push({
      domain,
      channels: set.channels,
      classNames: set.classNames,
      images: used.length,
      labels: [...own.labels],
    });
  }
  const types = customTypes(questions);
  if (types.length) index.questionTypes = types;
  index.questions = questions.map(({ answers: _, ...q }) => ({ ...q, image: renumber.get(`${q.domain}:${q.image}`)! }));
  await writeFile(join(dir, 'shard.json'), JSON.stringify(index)); // last: a folder without it is no shard
}

function customTypes(questions: readonly VqaExample[]): ShardQuestionType[] {
  const types = new Map<string, ShardQuestionType>();
  for (const q of questions) {
    if (!q.answers) continue;
    if (QUESTION_TYPES.some((t) => t.id === q.type))
      throw new ShardError(`question type '${q.type}' is built in; a custom type needs another id`);
    const t = types.get(q.type);
    if (!t) types.set(q.type, { id: q.type, domain: q.domain, question: q.question, answers: [...q.answers] });
    else if (t.answers.join('\n') !== q.answers.join('\n'))
      throw new ShardError(`questions of type '${q.type}' have different answer sets`);
  }
  return [...types.values()];
}

/**
 * writeShard, all or nothing: the shard is written into a hidden folder beside the target and renamed into place
 * only when complete and readable, so a failure (or a crash) never leaves a half-written shard at the target. An
 * existing target is refused unless replace is set; even then only a shard (or an empty folder) is replaced, never
 * some other folder given by mistake, and the old shard stays in place until the new one is complete.
 */
export async function writeShardAtomically(
  target: string,
  sets: ReadonlyMap<Domain, ImageSet>,
  questions: readonly VqaExample[],
  options: { replace?: boolean } = {},
): Promise<void> {
  const existing = await existingShard(target);
  if (existing === 'other')
    throw new ShardError(`${target} exists and is not a shard folder; refusing to replace it, choose another --out`);
  if (existing === 'shard' && !options.replace)
    throw new ShardError(`${target} already exists; pass --force to replace it`);
  await mkdir(dirname(target), { recursive: true });
  const partial = await mkdtemp(join(dirname(target), `.${basename(target)}.partial-`));
  try {
    await writeShard(partial, sets, questions);
    await readShard(partial); // what a client-agent will do, before the shard becomes visible
    if (existing === 'none') await rename(partial, target);
    else {
      // POSIX cannot rename a folder over a non-empty one: move the old shard aside, then the new one in.
      const old = `${partial.replace('.partial-', '.old-')}`;
      await rename(target, old);
      try {
        await rename(partial, target);
      } catch (e) {
        await rename(old, target);
        throw e;
      }
      await rm(old, { recursive: true, force: true });
    }
  } finally {
    await rm(partial, { recursive: true, force: true });
  }
}

async function existingShard(target: string): Promise<'none' | 'shard' | 'other'> {
  const info = await stat(target).catch(() => undefined);
  if (!info) return 'none';
  if (!info.isDirectory()) return 'other';
  const entries = await readdir(target);
  return entries.length === 0 || entries.includes('shard.json') ? 'shard' : 'other';
}

export async function readShard(dir: string): Promise<{ sets: Map<Domain, ImageSet>; questions: VqaExample[] }> {
  let index: ShardIndex;
  try {
    index = JSON.parse(await readFile(join(dir, 'shard.json'), 'utf8')) as ShardIndex;
  } catch (e) {
    throw new ShardError(`cannot read the client's data at ${dir}/shard.json: ${(e as Error).message}`);
  }
  if (index.format !== FORMAT)
    throw new ShardError(`${dir}/shard.json has format '${index.format}', expected '${FORMAT}'`);
  const sets = new Map<Domain, ImageSet>();
  for (const d of index.domains) {
    const pixels = new Uint8Array(await readFile(join(dir, `${d.domain}.pixels`)));
    const expected = d.images * d.channels * IMAGE_SIZE * IMAGE_SIZE;
    if (pixels.length !== expected)
      throw new ShardError(`${dir}/${d.domain}.pixels has ${pixels.length} bytes, expected ${expected}`);
    sets.set(d.domain, {
      domain: d.domain,
      channels: d.channels,
      pixels,
      labels: Int32Array.from(d.labels),
      classNames: d.classNames,
    });
  }
  const custom = new Map((index.questionTypes ?? []).map((t) => [t.id, t]));
  for (const q of index.questions) {
    if (!sets.has(q.domain) || !(q.image >= 0 && q.image < sets.get(q.domain)!.labels.length))
      throw new ShardError(`${dir}/shard.json: question refers to missing image ${q.domain}:${q.image}`);
    const answers = custom.get(q.type)?.answers ?? QUESTION_TYPES.find((t) => t.id === q.type)?.answers;
    if (!answers)
      throw new ShardError(`${dir}/shard.json: question type '${q.type}' is neither built in nor in questionTypes`);
    if (!answers.includes(q.answer))
      throw new ShardError(`${dir}/shard.json: answer '${q.answer}' is not one of type ${q.type}'s answers`);
    if (custom.has(q.type)) q.answers = answers; // the same array for every question of the type
  }
  return { sets, questions: index.questions };
}
