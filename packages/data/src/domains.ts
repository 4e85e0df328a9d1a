import type { Domain, ImageSet } from './images.js';
import { loadEmoji } from './sources/emoji.js';
import { loadFashionMnist } from './sources/fashion-mnist.js';
import { loadMnistDigits } from './sources/mnist-digits.js';
import { type Splits, splitImages } from './splits.js';

export const DOMAINS: readonly Domain[] = ['fashion', 'digits', 'emoji'];

/** One domain's images and their pretrain/train/val/test split. */
export interface DomainData {
  set: ImageSet;
  splits: Splits;
}

const cache = new Map<Domain, Promise<ImageSet>>();

/** Loads a domain's images (cached per process). Fashion-MNIST's train and test files are joined, then split. */
export function loadImages(domain: Domain): Promise<ImageSet> {
  let p = cache.get(domain);
  if (!p) {
    p = load(domain);
    cache.set(domain, p);
    p.catch(() => cache.delete(domain));
  }
  return p;
}

async function load(domain: Domain): Promise<ImageSet> {
  switch (domain) {
    case 'fashion': {
      const [train, test] = await Promise.all([loadFashionMnist('train'), loadFashionMnist('test')]);
      const pixels = new Uint8Array(train.pixels.length + test.pixels.length);
      pixels.set(train.pixels);
      pixels.set(test.pixels, train.pixels.length);
      const labels = new Int32Array(train.labels.length + test.labels.length);
      labels.set(train.labels);
      labels.set(test.labels, train.labels.length);
      return { ...train, pixels, labels };
    }
    case 'digits':
      return loadMnistDigits();
    case 'emoji':
      return loadEmoji();
    default:
      throw new Error(`unknown domain '${domain}' (known: ${DOMAINS.join(', ')})`);
  }
}

export async function loadDomain(domain: Domain, seed = 0): Promise<DomainData> {
  const set = await loadImages(domain);
  return { set, splits: splitImages(set, seed) };
}
