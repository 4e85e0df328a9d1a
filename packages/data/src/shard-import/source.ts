/**
 * What `fednano shard` reads from a data owner's files, before anything is decoded or checked against the model:
 * the image files and the questions about them. The readers (LLaVA conversations, ImageFolder) produce this; the
 * builder turns it into a shard.
 */
export interface SourceQuestion {
  /** Where it came from, for messages: `questions.jsonl:12`, `root/cat/01.png`. */
  where: string;
  /** The image file, as a path usable from the current directory. */
  image: string;
  question: string;
  answer: string;
}

export interface ImportSource {
  questions: SourceQuestion[];
  /** ImageFolder: the class names (sorted) and each image's class; the answers of its one question type. */
  classes?: { names: string[]; of: ReadonlyMap<string, number> };
  /** Records or files left out while reading, and why (only with skipInvalid; otherwise they are errors). */
  refused: Refusal[];
  /** Files seen but not images (e.g. notes, a .DS_Store): not an error, reported in the summary. */
  ignored: Refusal[];
}

export interface Refusal {
  where: string;
  reason: string;
}

/** Bad input, one line naming the file (and record) and how to fix it. */
export class ShardImportError extends Error {
  override name = 'ShardImportError';
}

/**
 * Collects what is left out. Strict (the default) makes the first problem an error: silently dropping a data
 * owner's questions would change their data without their noticing; --skip-invalid turns problems into refusals.
 */
export class Refusals {
  readonly list: Refusal[] = [];

  constructor(private readonly skipInvalid: boolean) {}

  add(where: string, reason: string): void {
    if (!this.skipInvalid)
      throw new ShardImportError(`${where}: ${reason} (fix it, or pass --skip-invalid to leave such items out)`);
    this.list.push({ where, reason });
  }
}

/** Limits that keep a mistaken --images (a whole disk, a decompression bomb) from exhausting the machine. */
export interface ImportLimits {
  maxImages: number;
  maxBytes: number;
  maxDimension: number;
}

export const DEFAULT_LIMITS: ImportLimits = { maxImages: 100_000, maxBytes: 2 * 1024 ** 3, maxDimension: 4096 };
