import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { IMAGE_SIZE } from './images.js';

/**
 * Image files (PNG, JPEG) to the frozen model's input: 28x28 bytes, planar RGB or grey. The same steps the emoji
 * icons go through in pretraining (sources/emoji.ts), so a user's images have the statistics the encoder saw: alpha
 * blended onto white, then an area (box) filter down to 28x28; the model reads bytes / 255, no mean/std shift.
 */

/** Decoded pixels: width x height RGBA bytes, row-major. */
export interface Rgba {
  width: number;
  height: number;
  data: Uint8Array;
}

/** How a non-square image becomes square: pad (white borders, the whole image kept), crop (centre), stretch. */
export type Fit = 'pad' | 'crop' | 'stretch';
export const FITS: readonly Fit[] = ['pad', 'crop', 'stretch'];

export class ImageFileError extends Error {
  override name = 'ImageFileError';
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const isPng = (b: Uint8Array) => PNG_MAGIC.every((v, i) => b[i] === v);
const isJpeg = (b: Uint8Array) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff;

/** Width and height from the file header, before any pixel is decoded (so a huge image is refused cheaply). */
export function imageDimensions(bytes: Uint8Array): { kind: 'png' | 'jpeg'; width: number; height: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (isPng(bytes)) {
    if (bytes.length < 24) throw new ImageFileError('truncated PNG header');
    return { kind: 'png', width: view.getUint32(16), height: view.getUint32(20) };
  }
  if (isJpeg(bytes)) {
    // Walk the marker segments to the first start-of-frame (SOF0..SOF15 except DHT C4, JPG C8, DAC CC).
    let p = 2;
    while (p + 9 < bytes.length) {
      if (bytes[p] !== 0xff) throw new ImageFileError(`bad JPEG marker at byte ${p}`);
      const marker = bytes[p + 1]!;
      if (marker === 0xff) {
        p++;
        continue;
      }
      const length = view.getUint16(p + 2);
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc)
        return { kind: 'jpeg', height: view.getUint16(p + 5), width: view.getUint16(p + 7) };
      p += 2 + length;
    }
    throw new ImageFileError('JPEG without a frame header (truncated?)');
  }
  throw new ImageFileError('not a PNG or JPEG file');
}

/** Decodes a PNG or JPEG (by its magic bytes, not its name); refuses images with a side over maxDimension. */
export function decodeImage(bytes: Uint8Array, maxDimension = Number.POSITIVE_INFINITY): Rgba {
  const { kind, width, height } = imageDimensions(bytes);
  if (width < 1 || height < 1) throw new ImageFileError(`${kind.toUpperCase()} of ${width}x${height} pixels`);
  if (width > maxDimension || height > maxDimension)
    throw new ImageFileError(`${width}x${height} pixels, larger than --max-dimension ${maxDimension}`);
  try {
    if (kind === 'png') {
      const img = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      return { width: img.width, height: img.height, data: new Uint8Array(img.data) };
    }
    const img = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: true,
      maxResolutionInMP: Math.max(1, (width * height) / 1e6 + 1),
      maxMemoryUsageInMB: 2048,
    });
    return { width: img.width, height: img.height, data: img.data };
  } catch (e) {
    throw new ImageFileError(`not a valid ${kind.toUpperCase()} (${(e as Error).message})`);
  }
}

/**
 * Blends on white and box-filters to 28x28 planar RGB. Each output pixel averages the source pixels its box covers
 * (nearest pixel when upscaling). For a square image every fit is the same, and the result is byte-identical to
 * the emoji pretraining pipeline.
 */
export function toModelRgb(img: Rgba, fit: Fit = 'pad'): Uint8Array {
  const { width, height, data } = img;
  // The square canvas the 28x28 boxes tile, and where the image sits on it (pad: centred, white around it).
  const side = fit === 'pad' ? Math.max(width, height) : Math.min(width, height);
  const [cw, ch] = fit === 'stretch' ? [width, height] : [side, side];
  const ox = fit === 'stretch' ? 0 : Math.floor((width - cw) / 2);
  const oy = fit === 'stretch' ? 0 : Math.floor((height - ch) / 2);
  const plane = IMAGE_SIZE * IMAGE_SIZE;
  const out = new Uint8Array(3 * plane);
  for (let y = 0; y < IMAGE_SIZE; y++) {
    const y0 = Math.floor((y * ch) / IMAGE_SIZE);
    const y1 = Math.max(y0 + 1, Math.floor(((y + 1) * ch) / IMAGE_SIZE));
    for (let x = 0; x < IMAGE_SIZE; x++) {
      const x0 = Math.floor((x * cw) / IMAGE_SIZE);
      const x1 = Math.max(x0 + 1, Math.floor(((x + 1) * cw) / IMAGE_SIZE));
      const sum = [0, 0, 0];
      for (let cy = y0; cy < y1; cy++)
        for (let cx = x0; cx < x1; cx++) {
          const sx = cx + ox;
          const sy = cy + oy;
          if (sx < 0 || sy < 0 || sx >= width || sy >= height) {
            for (let c = 0; c < 3; c++) sum[c]! += 255;
            continue;
          }
          const p = 4 * (sy * width + sx);
          const alpha = data[p + 3]! / 255;
          for (let c = 0; c < 3; c++) sum[c]! += data[p + c]! * alpha + 255 * (1 - alpha);
        }
      const n = (y1 - y0) * (x1 - x0);
      for (let c = 0; c < 3; c++) out[c * plane + y * IMAGE_SIZE + x] = Math.round(sum[c]! / n);
    }
  }
  return out;
}

/** Whether planar RGB has R = G = B everywhere (then one grey plane holds it without loss). */
export function isGrey(rgb: Uint8Array): boolean {
  const plane = rgb.length / 3;
  for (let p = 0; p < plane; p++) if (rgb[p] !== rgb[plane + p] || rgb[p] !== rgb[2 * plane + p]) return false;
  return true;
}

/** One grey plane from planar RGB (ITU-R BT.601 luma, as most image libraries convert). */
export function toGrey(rgb: Uint8Array): Uint8Array {
  const plane = rgb.length / 3;
  const out = new Uint8Array(plane);
  for (let p = 0; p < plane; p++)
    out[p] = Math.round(0.299 * rgb[p]! + 0.587 * rgb[plane + p]! + 0.114 * rgb[2 * plane + p]!);
  return out;
}
