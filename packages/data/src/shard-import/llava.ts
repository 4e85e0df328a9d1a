import { readFile, stat } from 'node:fs/promises';
import { dirname, extname, isAbsolute, join, relative, resolve } from 'node:path';
import { type ImportLimits, type ImportSource, Refusals, ShardImportError, type SourceQuestion } from './source.js';

/**
 * LLaVA-style conversation records, as a JSON array or JSON Lines:
 * `{"image": "cat.png", "conversations": [{"from": "human", "value": "<image>\nwhat is this?"},
 * {"from": "gpt", "value": "cat"}, ...]}`. Every human turn followed by a gpt turn is one question about the image;
 * the `<image>` placeholder is dropped. Image paths are relative to imagesDir and may not leave it.
 */
export async function readLlava(
  file: string,
  imagesDir: string | undefined,
  limits: ImportLimits,
  skipInvalid: boolean,
): Promise<ImportSource> {
  const dir = imagesDir ?? dirname(file);
  const size = (await stat(file).catch(() => undefined))?.size;
  if (size === undefined) throw new ShardImportError(`${file}: questions file not found`);
  if (size > limits.maxBytes)
    throw new ShardImportError(`${file}: ${size} bytes, more than --max-bytes ${limits.maxBytes}; split it`);
  const text = await readFile(file, 'utf8');
  const refusals = new Refusals(skipInvalid);
  const questions: SourceQuestion[] = [];
  for (const { where, value } of parseRecords(file, text, refusals)) {
    const image = imagePath(value, dir);
    if ('problem' in image) {
      refusals.add(where, image.problem);
      continue;
    }
    const pairs = turnPairs(value);
    if ('problem' in pairs) {
      refusals.add(where, pairs.problem);
      continue;
    }
    for (const [k, p] of pairs.entries())
      questions.push({ where: pairs.length > 1 ? `${where} turn ${k + 1}` : where, image: image.path, ...p });
  }
  return { questions, refused: refusals.list, ignored: [] };
}

/** JSON Lines when the name says .jsonl or the text does not start with '['; one record per non-blank line. */
function parseRecords(file: string, text: string, refusals: Refusals): { where: string; value: unknown }[] {
  const jsonl = extname(file).toLowerCase() === '.jsonl' || !text.trimStart().startsWith('[');
  if (!jsonl) {
    let all: unknown;
    try {
      all = JSON.parse(text);
    } catch (e) {
      throw new ShardImportError(`${file}: not valid JSON (${(e as Error).message})`);
    }
    return (all as unknown[]).map((value, i) => ({ where: `${file} record ${i + 1}`, value }));
  }
  const out: { where: string; value: unknown }[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push({ where: `${file}:${i + 1}`, value: JSON.parse(line) });
    } catch (e) {
      refusals.add(`${file}:${i + 1}`, `not valid JSON (${(e as Error).message})`);
    }
  });
  return out;
}

function imagePath(record: unknown, dir: string): { path: string } | { problem: string } {
  const image = (record as { image?: unknown } | null)?.image;
  if (image === undefined) return { problem: "no 'image' (text-only records have nothing for the image encoder)" };
  if (typeof image !== 'string' || image === '') return { problem: "'image' must be one file name (a string)" };
  const rel = relative(resolve(dir), resolve(dir, image));
  if (isAbsolute(image) || rel.startsWith('..') || isAbsolute(rel))
    return { problem: `image '${image}' is outside the image folder ${dir}` };
  return { path: join(dir, image) };
}

const HUMAN = new Set(['human', 'user']);
const GPT = new Set(['gpt', 'assistant']);

function turnPairs(record: unknown): { question: string; answer: string }[] | { problem: string } {
  const turns = (record as { conversations?: unknown }).conversations;
  if (!Array.isArray(turns) || turns.length === 0) return { problem: "no 'conversations' list" };
  const pairs: { question: string; answer: string }[] = [];
  for (let k = 0; k < turns.length; k += 2) {
    const q = turns[k] as { from?: unknown; value?: unknown } | null;
    const a = turns[k + 1] as { from?: unknown; value?: unknown } | null | undefined;
    if (!HUMAN.has(String(q?.from)) || typeof q?.value !== 'string')
      return { problem: `conversation turn ${k + 1} should be {"from": "human", "value": "<question>"}` };
    if (!a || !GPT.has(String(a.from)) || typeof a.value !== 'string')
      return { problem: `conversation turn ${k + 2} should be {"from": "gpt", "value": "<answer>"}` };
    pairs.push({ question: q.value.replaceAll('<image>', ' ').trim(), answer: a.value.trim() });
  }
  return pairs;
}
