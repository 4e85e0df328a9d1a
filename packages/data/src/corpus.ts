import type { ImageSet } from './images.js';
import { shuffle } from './random.js';
import { EMOJI_CLASSES } from './sources/emoji.js';
import { FASHION_CLASSES } from './sources/fashion-mnist.js';
import { DIGIT_WORDS } from './sources/mnist-digits.js';
import { WORN_ON } from './vqa.js';

/**
 * Text for pretraining the reference model. Stage (a) reads plain sentences about the concepts in the three domains;
 * stage (b) reads captions of images from the pretraining split. Neither uses the downstream question/answer format,
 * so a frozen model meets that format for the first time during federated adaptation.
 */

const FOOTWEAR = new Set(['sandal', 'sneaker', 'boot']);

/** Descriptive sentences: what items are, where they are worn, properties of numbers, emoji categories. */
export function knowledgeSentences(emojiNames: readonly { name: string; category: string }[] = []): string[] {
  const s: string[] = [];
  for (const item of FASHION_CLASSES) {
    s.push(`a ${item} is worn on the ${WORN_ON[item]} .`);
    s.push(FOOTWEAR.has(item) ? `a ${item} is footwear .` : `a ${item} is not footwear .`);
    s.push(`a photo of a ${item} .`, `this is a ${item} .`, `the ${item} is a kind of clothing item .`);
  }
  for (const [d, word] of DIGIT_WORDS.entries()) {
    s.push(`${word} is an ${d % 2 === 0 ? 'even' : 'odd'} number .`);
    s.push(`${word} is ${d > 4 ? '' : 'not '}greater than four .`);
    s.push(`a handwritten digit ${word} .`, `the digit ${word} comes after ${DIGIT_WORDS[(d + 9) % 10]} .`);
  }
  for (const c of EMOJI_CLASSES) s.push(`an emoji from the category ${c} .`, `${c} is a category of emoji .`);
  for (const { name, category } of emojiNames) s.push(`the ${name} emoji is in the category ${category} .`);
  s.push(
    'a flag is a symbol of a country .',
    'a face shows a feeling .',
    'every question has an answer .',
    'the answer to a question is a word .',
    'yes and no are answers .',
    'is it a photo ? yes , it is a photo .',
  );
  return s;
}

/** A caption for image i of a set (used only on the pretraining split). */
export function caption(set: ImageSet, i: number): string {
  const name = set.classNames[set.labels[i]!]!;
  switch (set.domain) {
    case 'fashion':
      return `a photo of a ${name} , worn on the ${WORN_ON[name]} .`;
    case 'digits':
      return `a handwritten digit ${name} .`;
    case 'emoji':
      // Category first: the word right after the image tokens is the one the vision side must get right.
      return `an emoji from the category ${name} : ${set.names?.[i] ?? 'something'} .`;
  }
}

/** Sentences packed into token sequences of a fixed length, shuffled, for language-model pretraining. */
export function packSentences(
  sentences: readonly string[],
  encode: (s: string) => number[],
  length: number,
  count: number,
  random: () => number,
): number[][] {
  const out: number[][] = [];
  let order: string[] = [];
  let current: number[] = [];
  while (out.length < count) {
    if (order.length === 0) order = shuffle([...sentences], random);
    current.push(...encode(order.pop()!));
    while (current.length >= length && out.length < count) {
      out.push(current.slice(0, length));
      current = current.slice(length);
    }
  }
  return out;
}
