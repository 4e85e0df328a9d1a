import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Domain, IMAGE_SIZE, type ImageSet, subset } from './images.js';
import type { VqaExample } from './vqa.js';

/**
 * One client's local data on disk, as a client-agent reads it from its data volume: the images its questions refer
 * to (raw pixel bytes per domain) and the questions (JSON), in the order they were assigned.
 */
const FORMAT = 'fednano-shard/v1';

interface ShardIndex {
  format: string;
  domains: { domain: Domain; channels: 1 | 3; classNames: string[]; images: number; labels: number[] }[];
  questions: VqaExample[];
}

export class ShardError extends Error {
  override name = 'ShardError';
}

/** Writes the questions and only the images they use; image indices are renumbered into the shard's own sets. */
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
  index.questions = questions.map((q) => ({ ...q, image: renumber.get(`${q.domain}:${q.image}`)! }));
  await writeFile(join(dir, 'shard.json'), JSON.stringify(index));
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
  for (const q of index.questions)
    if (!sets.has(q.domain) || !(q.image >= 0 && q.image < sets.get(q.domain)!.labels.length))
      throw new ShardError(`${dir}/shard.json: question refers to missing image ${q.domain}:${q.image}`);
  return { sets, questions: index.questions };
}
