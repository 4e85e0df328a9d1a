import type { Domain, ImageSet } from './images.js';
import { DIGIT_WORDS } from './sources/mnist-digits.js';

/**
 * Visual question types: a question about an image with a closed set of one-word answers. The answer is a
 * function of the image's label (and, for emoji, its subcategory).
 */
export interface QuestionType {
  id: string;
  domain: Domain;
  question: string;
  answers: readonly string[];
  answer(set: ImageSet, index: number): string;
}

const YES_NO = ['yes', 'no'] as const;
const yesNo = (b: boolean) => (b ? 'yes' : 'no');

const FOOTWEAR = new Set(['sandal', 'sneaker', 'boot']);
/** Where a Fashion-MNIST item is worn (or carried). */
export const WORN_ON: Record<string, string> = {
  't-shirt': 'top',
  trouser: 'legs',
  pullover: 'top',
  dress: 'body',
  coat: 'top',
  sandal: 'feet',
  shirt: 'top',
  sneaker: 'feet',
  bag: 'hand',
  boot: 'feet',
};

const label = (set: ImageSet, i: number) => set.classNames[set.labels[i]!]!;

export const QUESTION_TYPES: readonly QuestionType[] = [
  {
    id: 'fashion.item',
    domain: 'fashion',
    question: 'what item is this ?',
    answers: ['t-shirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'boot'],
    answer: label,
  },
  {
    id: 'fashion.footwear',
    domain: 'fashion',
    question: 'is it footwear ?',
    answers: YES_NO,
    answer: (s, i) => yesNo(FOOTWEAR.has(label(s, i))),
  },
  {
    id: 'fashion.worn',
    domain: 'fashion',
    question: 'where is it worn ?',
    answers: ['top', 'legs', 'body', 'feet', 'hand'],
    answer: (s, i) => WORN_ON[label(s, i)]!,
  },
  { id: 'digits.value', domain: 'digits', question: 'what digit is this ?', answers: DIGIT_WORDS, answer: label },
  {
    id: 'digits.even',
    domain: 'digits',
    question: 'is it even ?',
    answers: YES_NO,
    answer: (s, i) => yesNo(s.labels[i]! % 2 === 0),
  },
  {
    id: 'digits.large',
    domain: 'digits',
    question: 'is it greater than four ?',
    answers: YES_NO,
    answer: (s, i) => yesNo(s.labels[i]! > 4),
  },
  {
    id: 'emoji.category',
    domain: 'emoji',
    question: 'which category is this emoji ?',
    answers: ['smileys', 'people', 'animals', 'food', 'travel', 'activities', 'objects', 'symbols', 'flags'],
    answer: label,
  },
  {
    id: 'emoji.flag',
    domain: 'emoji',
    question: 'is it a flag ?',
    answers: YES_NO,
    answer: (s, i) => yesNo(label(s, i) === 'flags'),
  },
  {
    id: 'emoji.face',
    domain: 'emoji',
    question: 'is it a face ?',
    answers: YES_NO,
    answer: (s, i) => yesNo(/face/.test(s.subcategories?.[i] ?? '')),
  },
];

export function questionType(id: string): QuestionType {
  const q = QUESTION_TYPES.find((t) => t.id === id);
  if (!q) throw new Error(`unknown question type '${id}' (known: ${QUESTION_TYPES.map((t) => t.id).join(', ')})`);
  return q;
}

export const questionTypesOf = (domain: Domain): QuestionType[] => QUESTION_TYPES.filter((q) => q.domain === domain);

/** One visual question: an image (by index into its domain's set), the question and its answer. */
export interface VqaExample {
  domain: Domain;
  image: number;
  /** The image's class label, for label-skew partitioning. */
  label: number;
  type: string;
  question: string;
  answer: string;
  /**
   * The closed answer set of a per-shard custom question type (one a data owner brought, see docs/data.md);
   * absent for the built-in types, whose answers are in QUESTION_TYPES.
   */
  answers?: readonly string[];
}

/** The candidates a question is scored against: its custom type's answers, else its built-in type's. */
export const answerSet = (e: Pick<VqaExample, 'type' | 'answers'>): readonly string[] =>
  e.answers ?? questionType(e.type).answers;

/** Every question type of the domain asked about every given image. */
export function vqaExamples(
  set: ImageSet,
  images: readonly number[],
  types = questionTypesOf(set.domain),
): VqaExample[] {
  const out: VqaExample[] = [];
  for (const image of images)
    for (const t of types) {
      if (t.domain !== set.domain) throw new Error(`question type ${t.id} is not about ${set.domain} images`);
      out.push({
        domain: set.domain,
        image,
        label: set.labels[image]!,
        type: t.id,
        question: t.question,
        answer: t.answer(set, image),
      });
    }
  return out;
}

/** The prompt text the model reads after the image tokens; the answer follows it. */
export const promptText = (question: string): string => `question : ${question} answer :`;
