/** The three image domains, all at 28x28: Fashion-MNIST and MNIST in grey, emoji in colour. */
export type Domain = 'fashion' | 'digits' | 'emoji';

export const IMAGE_SIZE = 28;

export interface ImageSet {
  domain: Domain;
  channels: 1 | 3;
  /** N x channels x 28 x 28 bytes (0-255), row-major. */
  pixels: Uint8Array;
  /** Class index per image, into classNames. */
  labels: Int32Array;
  classNames: string[];
  /** Emoji only: subcategory and name per image. */
  subcategories?: string[];
  names?: string[];
}

export const imageCount = (set: ImageSet): number => set.labels.length;

/** Pixel bytes of image i. */
export function imageAt(set: ImageSet, i: number): Uint8Array {
  const n = set.channels * IMAGE_SIZE * IMAGE_SIZE;
  return set.pixels.subarray(i * n, (i + 1) * n);
}

/** The images at the given indices, as a new set (labels and metadata follow). */
export function subset(set: ImageSet, indices: readonly number[]): ImageSet {
  const n = set.channels * IMAGE_SIZE * IMAGE_SIZE;
  const pixels = new Uint8Array(indices.length * n);
  indices.forEach((idx, k) => {
    pixels.set(imageAt(set, idx), k * n);
  });
  return {
    ...set,
    pixels,
    labels: Int32Array.from(indices, (i) => set.labels[i]!),
    subcategories: set.subcategories && indices.map((i) => set.subcategories![i]!),
    names: set.names && indices.map((i) => set.names![i]!),
  };
}

/** Writes image i as float RGB in [0, 1] into out (3 x 28 x 28), replicating grey to three channels. */
export function writeRgb(set: ImageSet, i: number, out: Float32Array, offset: number): void {
  const px = imageAt(set, i);
  const plane = IMAGE_SIZE * IMAGE_SIZE;
  for (let c = 0; c < 3; c++) {
    const src = set.channels === 3 ? c * plane : 0;
    for (let p = 0; p < plane; p++) out[offset + c * plane + p] = px[src + p]! / 255;
  }
}

/** Thrown when a data source is not installed; the message says what to install. */
export class MissingDataError extends Error {
  override name = 'MissingDataError';
}
