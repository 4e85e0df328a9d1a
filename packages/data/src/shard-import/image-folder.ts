import { opendir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { type ImportLimits, type ImportSource, type Refusal, ShardImportError, type SourceQuestion } from './source.js';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

/**
 * The torchvision ImageFolder layout, `root/<class>/<image>.png|jpg`: one classification question per image, the
 * class folder's name its answer. Hidden files are skipped; other files are listed as ignored, not errors.
 */
export async function readImageFolder(root: string, question: string, limits: ImportLimits): Promise<ImportSource> {
  if (!(await stat(root).catch(() => undefined))?.isDirectory())
    throw new ShardImportError(`${root}: image folder not found (expected ${root}/<class>/<image>.png)`);
  const ignored: Refusal[] = [];
  const files: { path: string; cls: string }[] = [];
  const classes = new Set<string>();
  for await (const entry of await opendir(root)) {
    if (entry.name.startsWith('.')) continue;
    const path = join(root, entry.name);
    if (!entry.isDirectory()) {
      ignored.push({ where: path, reason: 'not in a class folder' });
      continue;
    }
    classes.add(entry.name);
    for await (const f of await opendir(path)) {
      if (f.name.startsWith('.')) continue;
      const file = join(path, f.name);
      if (!f.isFile() || !IMAGE_EXTENSIONS.has(extname(f.name).toLowerCase())) {
        ignored.push({ where: file, reason: 'not a .png, .jpg or .jpeg file' });
        continue;
      }
      // Counted while listing, so a folder of millions is refused before it is read into memory.
      if (files.length === limits.maxImages)
        throw new ShardImportError(
          `${root}: more than --max-images ${limits.maxImages} images; split the folder into several shards or raise --max-images`,
        );
      files.push({ path: file, cls: entry.name });
    }
  }
  if (classes.size === 0)
    throw new ShardImportError(`${root}: no class folders (expected ${root}/<class>/<image>.png)`);
  const names = [...classes].sort();
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)); // listing order is the file system's
  const of = new Map(files.map((f) => [f.path, names.indexOf(f.cls)]));
  const questions: SourceQuestion[] = files.map((f) => ({ where: f.path, image: f.path, question, answer: f.cls }));
  return { questions, classes: { names, of }, refused: [], ignored };
}
