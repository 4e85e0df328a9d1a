import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { IMAGE_SIZE, type ImageSet, MissingDataError } from '../images.js';

/** Where Debian's dataset-fashion-mnist package puts the IDX files; FEDNANO_FASHION_MNIST_DIR overrides it. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** The ten Fashion-MNIST classes, as single words (class 9 is "ankle boot"). */
export const FASHION_CLASSES = [
  't-shirt',
  'trouser',
  'pullover',
  'dress',
  'coat',
  'sandal',
  'shirt',
  'sneaker',
  'bag',
  'boot',
];

/** Parses an IDX file (the MNIST format): magic with the element type and rank, then big-endian dims, then bytes. */
export function parseIdx(buf: Uint8Array, what: string): { dims: number[]; data: Uint8Array } {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf.length < 4 || view.getUint16(0) !== 0 || buf[2] !== 0x08)
    throw new Error(`${what}: not an unsigned-byte IDX file (magic ${[...buf.subarray(0, 4)].join(',')})`);
  const rank = buf[3]!;
  const dims = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i));
  const start = 4 + 4 * rank;
  const size = dims.reduce((a, b) => a * b, 1);
  if (buf.length - start !== size)
    throw new Error(`${what}: expected ${size} bytes of data, found ${buf.length - start}`);
  return { dims, data: buf.subarray(start) };
}

async function readIdx(dir: string, name: string): Promise<{ dims: number[]; data: Uint8Array }> {
  const path = join(dir, name);
  const raw = new Uint8Array(await readFile(path));
  return parseIdx(name.endsWith('.gz') ? new Uint8Array(gunzipSync(raw)) : raw, path);
}

export type FashionSplit = 'train' | 'test';

/** Loads a Fashion-MNIST split (60,000 train or 10,000 test images). */
export async function loadFashionMnist(
  split: FashionSplit,
  dir = process.env.FEDNANO_FASHION_MNIST_DIR ?? FASHION_MNIST_DIR,
): Promise<ImageSet> {
  const prefix = split === 'train' ? 'train' : 't10k';
  const imagesFile = `${prefix}-images-idx3-ubyte.gz`;
  if (!existsSync(join(dir, imagesFile)))
    throw new MissingDataError(
      `Fashion-MNIST not found at ${dir}: install it with 'apt-get install dataset-fashion-mnist' ` +
        '(or set FEDNANO_FASHION_MNIST_DIR to a folder with the IDX files)',
    );
  const images = await readIdx(dir, imagesFile);
  const labels = await readIdx(dir, `${prefix}-labels-idx1-ubyte.gz`);
  if (images.dims[1] !== IMAGE_SIZE || images.dims[2] !== IMAGE_SIZE || images.dims[0] !== labels.dims[0])
    throw new Error(`Fashion-MNIST ${split}: unexpected shapes [${images.dims}] and [${labels.dims}]`);
  return {
    domain: 'fashion',
    channels: 1,
    pixels: images.data,
    labels: Int32Array.from(labels.data),
    classNames: FASHION_CLASSES,
  };
}
