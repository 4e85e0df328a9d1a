import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { PNG } from 'pngjs';
import { toModelRgb } from '../image-files.js';
import { IMAGE_SIZE, type ImageSet, MissingDataError } from '../images.js';

/**
 * Twemoji icons from the npm package `emoji-datasource-twitter` (images CC-BY 4.0 by Twitter, Inc and other
 * contributors). Categories are shortened to one word each; skin-tone variants count as images of their emoji.
 */
export const EMOJI_CATEGORIES: Record<string, string> = {
  'Smileys & Emotion': 'smileys',
  'People & Body': 'people',
  'Animals & Nature': 'animals',
  'Food & Drink': 'food',
  'Travel & Places': 'travel',
  Activities: 'activities',
  Objects: 'objects',
  Symbols: 'symbols',
  Flags: 'flags',
};
export const EMOJI_CLASSES = Object.values(EMOJI_CATEGORIES);

interface EmojiEntry {
  name: string | null;
  short_name: string;
  image: string;
  category: string;
  subcategory: string;
  has_img_twitter: boolean;
  skin_variations?: Record<string, { image: string; has_img_twitter: boolean }>;
}

function packageDir(): string {
  try {
    return dirname(createRequire(import.meta.url).resolve('emoji-datasource-twitter/package.json'));
  } catch {
    throw new MissingDataError(
      "emoji icons not found: install the npm package with 'npm install emoji-datasource-twitter'",
    );
  }
}

/** Decodes a 64x64 RGBA PNG, blends it on white and box-filters it to 28x28 RGB bytes (planar). */
export function decodeIcon(png: Uint8Array): Uint8Array {
  const img = PNG.sync.read(Buffer.from(png));
  return toModelRgb({ width: img.width, height: img.height, data: img.data });
}

/**
 * Loads the Twemoji icons with their category (the label), subcategory and name: about 1,900 base icons, or about
 * 3,800 with skin-tone variants (which make 'people' 60% of the set, hence off by default).
 */
export async function loadEmoji(options: { skinTones?: boolean } = {}): Promise<ImageSet> {
  const dir = packageDir();
  const entries = JSON.parse(await readFile(join(dir, 'emoji.json'), 'utf8')) as EmojiEntry[];
  const items: { file: string; label: number; subcategory: string; name: string }[] = [];
  for (const e of entries) {
    const category = EMOJI_CATEGORIES[e.category];
    if (category === undefined) continue; // 'Component' (skin-tone swatches and hair parts) is not a category
    const base = {
      label: EMOJI_CLASSES.indexOf(category),
      subcategory: e.subcategory,
      name: (e.name ?? e.short_name).toLowerCase(),
    };
    if (e.has_img_twitter) items.push({ ...base, file: e.image });
    if (options.skinTones)
      for (const v of Object.values(e.skin_variations ?? {}))
        if (v.has_img_twitter) items.push({ ...base, file: v.image });
  }
  const plane = 3 * IMAGE_SIZE * IMAGE_SIZE;
  const pixels = new Uint8Array(items.length * plane);
  for (const [i, item] of items.entries())
    pixels.set(decodeIcon(await readFile(join(dir, 'img', 'twitter', '64', item.file))), i * plane);
  return {
    domain: 'emoji',
    channels: 3,
    pixels,
    labels: Int32Array.from(items, (it) => it.label),
    classNames: EMOJI_CLASSES,
    subcategories: items.map((it) => it.subcategory),
    names: items.map((it) => it.name),
  };
}
