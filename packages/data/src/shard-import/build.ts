import { readFile, stat } from 'node:fs/promises';
import { DOMAINS } from '../domains.js';
import { decodeImage, type Fit, isGrey, toGrey, toModelRgb } from '../image-files.js';
import { type Domain, IMAGE_SIZE, type ImageSet } from '../images.js';
import { writeShardAtomically } from '../shard.js';
import { SPECIAL_TOKENS, type Tokenizer, UNK, words } from '../tokenizer.js';
import { promptText, QUESTION_TYPES, type QuestionType, type VqaExample } from '../vqa.js';
import { type ImportLimits, type ImportSource, type Refusal, Refusals, ShardImportError } from './source.js';

/**
 * A data owner's images and questions (an ImportSource) to a shard the frozen model can use:
 *
 * - images: decoded, fitted to a square, area-resized to 28x28 like the pretraining data; stored grey when every
 *   image is grey (lossless: the model replicates grey to RGB), else RGB;
 * - questions: normalised as the tokenizer splits them; one that matches a built-in question type of the shard's
 *   domain is that type (and its answer must be one of the type's), any other becomes a per-shard custom type
 *   `custom.<words>` whose closed answer set is the answers given for it;
 * - answers: one word the model's tokenizer knows, since the model answers with a single token and is scored
 *   among its type's candidates.
 */
export interface BuildOptions {
  tokenizer: Tokenizer;
  /** Text positions for the prompt before the answer token (the model's text length - 1). */
  maxPromptTokens: number;
  /** Which built-in question types can match; 'auto': the domain most questions match, else by colour. */
  domain: Domain | 'auto';
  channels: 'auto' | 'grey' | 'rgb';
  fit: Fit;
  limits: ImportLimits;
  skipInvalid: boolean;
}

export interface TypeSummary {
  type: string;
  builtIn: boolean;
  question: string;
  questions: number;
  /** Size of the closed answer set the questions are scored against. */
  candidates: number;
}

export interface ShardSummary {
  domain: Domain;
  channels: 1 | 3;
  images: number;
  questions: number;
  types: TypeSummary[];
  /** Answers checked against the tokenizer: hits are single known words, misses were refused. */
  answerVocabulary: { hits: number; misses: number };
  /** Distinct question words the tokenizer does not know (the model reads them as <unk>). */
  unknownQuestionWords: string[];
  refusedImages: Refusal[];
  refusedQuestions: Refusal[];
  ignoredFiles: Refusal[];
  warnings: string[];
}

export interface BuiltShard {
  sets: Map<Domain, ImageSet>;
  questions: VqaExample[];
  summary: ShardSummary;
}

const PUNCTUATION = /^[?.,:!;()]$/;
const normalise = (text: string) => words(text).join(' ');

export async function buildShard(source: ImportSource, o: BuildOptions): Promise<BuiltShard> {
  const imageRefusals = new Refusals(o.skipInvalid);
  const questionRefusals = new Refusals(o.skipInvalid);
  questionRefusals.list.push(...source.refused);

  const pixels = await decodeImages([...new Set(source.questions.map((q) => q.image))], o, imageRefusals);
  const rgbImages = [...pixels.values()];
  const channels: 1 | 3 = o.channels === 'grey' ? 1 : o.channels === 'rgb' ? 3 : rgbImages.every(isGrey) ? 1 : 3;
  const domain = o.domain !== 'auto' ? o.domain : chooseDomain(source, channels);
  const builtIn = new Map(
    QUESTION_TYPES.filter((t) => t.domain === domain).map((t) => [normalise(t.question), t] as const),
  );

  // Questions: the image must have decoded, the text must fit the model, the answer must be a word it knows.
  const vocabulary = { hits: 0, misses: 0 };
  const unknownWords = new Set<string>();
  const accepted: { q: (typeof source.questions)[number]; question: string; answer: string; type?: QuestionType }[] =
    [];
  for (const q of source.questions) {
    if (!pixels.has(q.image)) {
      questionRefusals.list.push({ where: q.where, reason: `its image ${q.image} was refused` });
      continue;
    }
    const question = normalise(q.question);
    if (question === '') {
      questionRefusals.add(q.where, 'empty question');
      continue;
    }
    const promptTokens = o.tokenizer.encode(promptText(question)).length;
    if (promptTokens > o.maxPromptTokens) {
      questionRefusals.add(
        q.where,
        `question '${question}' is ${words(question).length} words; the model reads at most ${o.maxPromptTokens - (promptTokens - words(question).length)}`,
      );
      continue;
    }
    const answer = answerWord(q.answer, o.tokenizer);
    if ('problem' in answer) {
      vocabulary.misses++;
      questionRefusals.add(q.where, answer.problem);
      continue;
    }
    vocabulary.hits++;
    const type = builtIn.get(question);
    if (type && !type.answers.includes(answer.word)) {
      questionRefusals.add(
        q.where,
        `answer '${answer.word}' is not one of ${type.id}'s answers (${type.answers.join(', ')})`,
      );
      continue;
    }
    for (const w of words(question)) if (o.tokenizer.id(w) === UNK) unknownWords.add(w);
    accepted.push({ q, question, answer: answer.word, type });
  }

  const customAnswers = customAnswerSets(accepted, source, o.tokenizer);
  const customIds = customTypeIds([...customAnswers.keys()]);
  const images = [...new Set(accepted.map((a) => a.q.image))];
  const index = new Map(images.map((path, i) => [path, i]));
  for (const path of pixels.keys())
    if (!index.has(path)) imageRefusals.list.push({ where: path, reason: 'none of its questions was usable' });

  const plane = IMAGE_SIZE * IMAGE_SIZE;
  const setPixels = new Uint8Array(images.length * channels * plane);
  images.forEach((path, i) => {
    const rgb = pixels.get(path)!;
    setPixels.set(channels === 3 ? rgb : toGrey(rgb), i * channels * plane);
  });
  const classNames = source.classes ? source.classes.names.map((n) => normalise(n)) : ['unlabelled'];
  const twin = classNames.find((n, i) => classNames.indexOf(n) !== i);
  if (twin !== undefined)
    throw new ShardImportError(`two class folders both name the answer '${twin}' (names are lower-cased); merge them`);
  const labels = Int32Array.from(images, (path) => source.classes?.of.get(path) ?? 0);
  const set: ImageSet = { domain, channels, pixels: setPixels, labels, classNames };

  const questions: VqaExample[] = accepted.map((a) => {
    const image = index.get(a.q.image)!;
    const base = { domain, image, label: labels[image]!, question: a.question, answer: a.answer };
    if (a.type) return { ...base, type: a.type.id };
    return { ...base, type: customIds.get(a.question)!, answers: customAnswers.get(a.question)! };
  });
  if (questions.length === 0)
    throw new ShardImportError(
      `no usable questions (${source.questions.length} read, ${questionRefusals.list.length} refused); nothing written`,
    );
  const summary = summarise(questions, customAnswers, customIds, {
    domain,
    channels,
    images: images.length,
    questions: questions.length,
    answerVocabulary: vocabulary,
    unknownQuestionWords: [...unknownWords].sort(),
    refusedImages: imageRefusals.list,
    refusedQuestions: questionRefusals.list,
    ignoredFiles: source.ignored,
  });
  return { sets: new Map([[domain, set]]), questions, summary };
}

/** buildShard, then writeShardAtomically: the target holds the whole new shard or is left as it was. */
export async function importShard(
  target: string,
  source: ImportSource,
  o: BuildOptions & { replace?: boolean },
): Promise<ShardSummary> {
  const built = await buildShard(source, o);
  await writeShardAtomically(target, built.sets, built.questions, { replace: o.replace });
  return built.summary;
}

/** Every referenced image decoded to 28x28 RGB, checked against the limits first (count, bytes, pixels). */
async function decodeImages(paths: string[], o: BuildOptions, refusals: Refusals): Promise<Map<string, Uint8Array>> {
  if (paths.length > o.limits.maxImages)
    throw new ShardImportError(
      `${paths.length} images referenced, more than --max-images ${o.limits.maxImages}; split the data into several shards or raise --max-images`,
    );
  let bytes = 0;
  const present: string[] = [];
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) {
      refusals.add(path, 'image file not found');
      continue;
    }
    bytes += info.size;
    if (bytes > o.limits.maxBytes)
      throw new ShardImportError(
        `${path}: the images pass --max-bytes ${o.limits.maxBytes} here; split the data into several shards or raise --max-bytes`,
      );
    present.push(path);
  }
  const out = new Map<string, Uint8Array>();
  for (const path of present) {
    try {
      out.set(path, toModelRgb(decodeImage(new Uint8Array(await readFile(path)), o.limits.maxDimension), o.fit));
    } catch (e) {
      refusals.add(path, (e as Error).message);
    }
  }
  return out;
}

/** The single word an answer is, or why it cannot be one (trailing punctuation, as in "Yes.", is dropped). */
function answerWord(raw: string, tok: Tokenizer): { word: string } | { problem: string } {
  const ws = words(raw).filter((w) => !PUNCTUATION.test(w));
  if (ws.length !== 1)
    return { problem: `answer '${raw}' is ${ws.length} words; the frozen model answers with one word` };
  const word = ws[0]!;
  if ((SPECIAL_TOKENS as readonly string[]).includes(word) || tok.id(word) === UNK)
    return { problem: `answer '${word}' is not in the model's vocabulary (${tok.size} words); use a word it knows` };
  return { word };
}

/** Built-in types of the domain most questions match; none match: emoji for colour images, fashion for grey. */
function chooseDomain(source: ImportSource, channels: 1 | 3): Domain {
  const byText = new Map(QUESTION_TYPES.map((t) => [normalise(t.question), t.domain]));
  const counts = new Map<Domain, number>();
  for (const q of source.questions) {
    const d = byText.get(normalise(q.question));
    if (d) counts.set(d, (counts.get(d) ?? 0) + 1);
  }
  const best = [...DOMAINS].sort((a, b) => (counts.get(b) ?? 0) - (counts.get(a) ?? 0))[0]!;
  if ((counts.get(best) ?? 0) > 0) return best;
  return channels === 3 ? 'emoji' : 'fashion';
}

/**
 * Closed answer sets of the custom types, per normalised question: an ImageFolder's classes (all of them, so
 * every class is a candidate even where this shard has none of its images), else the answers given for it.
 */
function customAnswerSets(
  accepted: { question: string; answer: string; type?: QuestionType }[],
  source: ImportSource,
  tok: Tokenizer,
): Map<string, string[]> {
  const sets = new Map<string, Set<string>>();
  for (const a of accepted) {
    if (a.type) continue;
    const s = sets.get(a.question) ?? new Set<string>();
    if (source.classes)
      for (const n of source.classes.names) {
        const w = answerWord(n, tok);
        if ('word' in w) s.add(w.word);
      }
    s.add(a.answer);
    sets.set(a.question, s);
  }
  return new Map([...sets].map(([q, s]) => [q, [...s].sort()]));
}

/** `custom.<question words>`, readable in per-type reports and the same for the same question in every shard. */
function customTypeIds(questions: string[]): Map<string, string> {
  const ids = new Map<string, string>();
  const taken = new Set<string>();
  for (const q of questions) {
    const slug =
      words(q)
        .filter((w) => !PUNCTUATION.test(w))
        .join('-')
        .replace(/[^\p{L}\p{N}-]/gu, '')
        .slice(0, 60) || 'question';
    let id = `custom.${slug}`;
    for (let k = 2; taken.has(id); k++) id = `custom.${slug}-${k}`;
    taken.add(id);
    ids.set(q, id);
  }
  return ids;
}

function summarise(
  questions: VqaExample[],
  customAnswers: Map<string, string[]>,
  customIds: Map<string, string>,
  partial: Omit<ShardSummary, 'types' | 'warnings'>,
): ShardSummary {
  const types = new Map<string, TypeSummary>();
  for (const q of questions) {
    const t = types.get(q.type) ?? {
      type: q.type,
      builtIn: !q.answers,
      question: q.question,
      questions: 0,
      candidates: (q.answers ?? QUESTION_TYPES.find((b) => b.id === q.type)!.answers).length,
    };
    t.questions++;
    types.set(q.type, t);
  }
  const warnings: string[] = [];
  for (const [question, answers] of customAnswers)
    if (answers.length === 1)
      warnings.push(
        `${customIds.get(question)}: every question has the answer '${answers[0]}', so scoring it says nothing`,
      );
  if (partial.unknownQuestionWords.length)
    warnings.push(
      `${partial.unknownQuestionWords.length} question words are unknown to the model and read as <unk>: ${partial.unknownQuestionWords.slice(0, 10).join(', ')}`,
    );
  return { ...partial, types: [...types.values()].sort((a, b) => (a.type < b.type ? -1 : 1)), warnings };
}
