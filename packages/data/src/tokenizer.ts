/**
 * A word-level tokenizer: lower-case words (hyphenated words stay whole) and punctuation marks are tokens. The
 * vocabulary is built from a corpus, most frequent first, and saved as JSON next to the model.
 */
export const SPECIAL_TOKENS = ['<pad>', '<unk>', '<bos>', '<eos>'] as const;
export const PAD = 0;
export const UNK = 1;
export const BOS = 2;
export const EOS = 3;

export interface TokenizerJson {
  format: 'fednano-word-tokenizer';
  version: 1;
  vocab: string[];
}

export function words(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/([?.,:!;()])/g, ' $1 ')
    .split(/\s+/)
    .filter((w) => w.length > 0);
}

export class Tokenizer {
  private readonly ids: Map<string, number>;

  constructor(readonly vocab: readonly string[]) {
    SPECIAL_TOKENS.forEach((t, i) => {
      if (vocab[i] !== t) throw new Error(`tokenizer vocabulary must start with ${SPECIAL_TOKENS.join(' ')}`);
    });
    this.ids = new Map(vocab.map((w, i) => [w, i]));
    if (this.ids.size !== vocab.length) throw new Error('tokenizer vocabulary has duplicate entries');
  }

  /** Builds a vocabulary of at most maxSize tokens from words seen at least minCount times (ties: alphabetical). */
  static fromCorpus(
    texts: Iterable<string>,
    options: { maxSize?: number; minCount?: number; required?: string[] } = {},
  ): Tokenizer {
    const counts = new Map<string, number>();
    for (const t of texts) for (const w of words(t)) counts.set(w, (counts.get(w) ?? 0) + 1);
    const required = new Set((options.required ?? []).flatMap(words));
    const ranked = [...counts]
      .filter(([w, c]) => c >= (options.minCount ?? 1) && !required.has(w))
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .map(([w]) => w);
    const fixed = [...SPECIAL_TOKENS, ...[...required].sort()];
    const room = Math.max(0, (options.maxSize ?? Number.POSITIVE_INFINITY) - fixed.length);
    return new Tokenizer([...fixed, ...ranked.slice(0, room)]);
  }

  static fromJson(json: TokenizerJson): Tokenizer {
    if (json.format !== 'fednano-word-tokenizer' || json.version !== 1)
      throw new Error(`unsupported tokenizer file (format ${json.format}, version ${json.version})`);
    return new Tokenizer(json.vocab);
  }

  toJson(): TokenizerJson {
    return { format: 'fednano-word-tokenizer', version: 1, vocab: [...this.vocab] };
  }

  get size(): number {
    return this.vocab.length;
  }

  id(word: string): number {
    return this.ids.get(word) ?? UNK;
  }

  /** The id of a word that must be in the vocabulary (e.g. an answer), else an error. */
  requireId(word: string): number {
    const id = this.ids.get(word);
    if (id === undefined) throw new Error(`'${word}' is not in the tokenizer's vocabulary`);
    return id;
  }

  encode(text: string): number[] {
    return words(text).map((w) => this.id(w));
  }

  decode(ids: Iterable<number>): string {
    return [...ids].map((i) => this.vocab[i] ?? '<unk>').join(' ');
  }
}
