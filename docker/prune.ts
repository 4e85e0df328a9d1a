/**
 * Prunes a full `npm ci` + `tsc -b tsconfig.build.json` of this workspace down to what one program needs at run time,
 * for the images in docker/.
 *
 *   node --import tsx docker/prune.ts services/llm-host [--dry-run]
 *
 * Keeps: the named workspace and the workspaces and packages its `dependencies` reach (transitively, resolved the way
 * Node resolves them, from package-lock.json). Of each kept workspace only its package.json, bin/, node_modules/ and the compiled
 * dist/ stay (no TypeScript sources, declarations or build info: the images run the JavaScript, with
 * `--conditions=fednano-dist`, so neither tsx nor typescript is needed). Removes every other package and workspace,
 * and the onnxruntime-node binaries built for other platforms than this one. devDependencies are never followed.
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export interface LockPackage {
  name?: string;
  version?: string;
  link?: boolean;
  resolved?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

export interface Lockfile {
  lockfileVersion: number;
  packages: Record<string, LockPackage>;
}

/** Root devDependencies that the images need at run time: none (the images run compiled JavaScript). */
export const RUNTIME_ROOT_PACKAGES: readonly string[] = [];

/** Where `name` resolves from the package at lockfile location `from` (Node's walk up the node_modules folders). */
export function resolveDependency(lock: Lockfile, from: string, name: string): string | undefined {
  let dir = from;
  for (;;) {
    const candidate = dir === '' ? `node_modules/${name}` : `${dir}/node_modules/${name}`;
    if (candidate in lock.packages) return candidate;
    if (dir === '') return undefined;
    const slash = dir.lastIndexOf('/');
    dir = slash < 0 ? '' : dir.slice(0, slash);
  }
}

/** Lockfile locations (package folders, workspace folders and workspace links) the workspace needs at run time. */
export function runtimeClosure(
  lock: Lockfile,
  workspace: string,
  without: ReadonlySet<string> = new Set(),
): Set<string> {
  if (lock.lockfileVersion < 2) throw new Error(`package-lock.json v${lock.lockfileVersion}: need v2 or v3`);
  if (!(workspace in lock.packages) || workspace.startsWith('node_modules/') || workspace === '')
    throw new Error(`'${workspace}' is not a workspace in package-lock.json`);
  const keep = new Set<string>();
  const queue: string[] = [workspace];
  for (const name of RUNTIME_ROOT_PACKAGES) {
    const at = resolveDependency(lock, '', name);
    if (at === undefined) throw new Error(`${name} is not in package-lock.json`);
    queue.push(at);
  }
  while (queue.length > 0) {
    const at = queue.pop()!;
    if (keep.has(at)) continue;
    keep.add(at);
    const entry = lock.packages[at]!;
    if (entry.link) {
      if (entry.resolved === undefined || !(entry.resolved in lock.packages))
        throw new Error(`${at} links to a location missing from package-lock.json`);
      queue.push(entry.resolved);
      continue;
    }
    const required = Object.keys(entry.dependencies ?? {});
    const optional = [
      ...Object.keys(entry.optionalDependencies ?? {}),
      ...Object.keys(entry.peerDependencies ?? {}).filter((p) => entry.peerDependenciesMeta?.[p]?.optional),
    ];
    const peers = Object.keys(entry.peerDependencies ?? {}).filter((p) => !entry.peerDependenciesMeta?.[p]?.optional);
    for (const name of required) {
      if (without.has(name)) continue;
      const dep = resolveDependency(lock, at, name);
      if (dep === undefined) throw new Error(`${at} depends on ${name}, which package-lock.json does not hold`);
      queue.push(dep);
    }
    // Optional dependencies for other platforms, and peers nobody installed, are simply absent.
    for (const name of [...optional, ...peers]) {
      if (without.has(name)) continue;
      const dep = resolveDependency(lock, at, name);
      if (dep !== undefined) queue.push(dep);
    }
  }
  return keep;
}

/** Lockfile locations (other than the root) that the workspace does not need. */
export function prunable(lock: Lockfile, keep: Set<string>): string[] {
  return Object.keys(lock.packages)
    .filter((at) => at !== '' && !keep.has(at))
    .sort();
}

/** onnxruntime-node ships binaries for every platform (~290 MB); keep only `platform/arch`. */
export function foreignOnnxRuntimeBinaries(root: string, platform: string, arch: string): string[] {
  const bin = join(root, 'node_modules/onnxruntime-node/bin');
  if (!existsSync(bin)) return [];
  const out: string[] = [];
  for (const napi of readdirSync(bin)) {
    for (const os of readdirSync(join(bin, napi))) {
      for (const cpu of readdirSync(join(bin, napi, os))) {
        if (os !== platform || cpu !== arch) out.push(join(bin, napi, os, cpu));
      }
    }
  }
  return out;
}

/** Paths inside one kept workspace folder that the compiled program does not need: everything but package.json,
 * bin/, dist/ and node_modules/ (its own pruned dependencies), and in dist/ the declarations, source maps and build info. Throws when dist/ is missing (not built). */
export function workspaceLeftovers(dir: string): string[] {
  const dist = join(dir, 'dist');
  if (!existsSync(dist)) throw new Error(`${dist} is missing: run \`npx tsc -b tsconfig.build.json\` before the prune`);
  const out = readdirSync(dir)
    .filter((e) => !['package.json', 'bin', 'dist', 'node_modules'].includes(e))
    .map((e) => join(dir, e));
  const walk = (d: string): void => {
    for (const e of readdirSync(d)) {
      const path = join(d, e);
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.d\.ts$|\.d\.ts\.map$|\.js\.map$|\.tsbuildinfo$/.test(e)) out.push(path);
    }
  };
  walk(dist);
  return out;
}

/**
 * Files under node_modules that no program loads: type declarations, source maps and Markdown documents (~30% of a
 * pruned tree). Licence and notice files are kept whatever their extension.
 */
export function nodeModulesLeftovers(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, e.name);
      if (e.isDirectory()) walk(path);
      else if (
        e.isFile() &&
        /\.d\.[cm]?ts$|\.([cm]?js|[cm]?ts|css)\.map$|\.md$|\.markdown$/i.test(e.name) &&
        !/^(licen[cs]e|copying|notice|authors)/i.test(e.name)
      )
        out.push(path);
    }
  };
  walk(dir);
  return out;
}

/** Empty folders under `dir` (deepest first), e.g. npm scopes whose packages were all removed. */
function emptyFolders(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string): boolean => {
    let empty = true;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory() && walk(join(d, e.name))) out.push(join(d, e.name));
      else empty = false;
    }
    return empty;
  };
  walk(dir);
  return out;
}

function main(argv: string[]): void {
  const workspace = argv.find((a) => !a.startsWith('--'));
  const dryRun = argv.includes('--dry-run');
  // --without=a,b: packages a dependency declares but this program never loads (e.g. the datasets, which
  // @fednano/data resolves only when a dataset is read); dropped with whatever only they need.
  const without = new Set(argv.filter((a) => a.startsWith('--without=')).flatMap((a) => a.slice(10).split(',')));
  if (workspace === undefined) {
    process.stderr.write(
      'usage: node --import tsx docker/prune.ts <workspace folder> [--without=pkg,...] [--dry-run]\n',
    );
    process.exit(2);
  }
  const root = process.cwd();
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as Lockfile;
  for (const name of without)
    if (resolveDependency(lock, '', name) === undefined) throw new Error(`--without=${name}: not in package-lock.json`);
  const keep = runtimeClosure(lock, workspace.replace(/\/+$/, ''), without);
  const workspaces = [...keep].filter((at) => !at.includes('node_modules/') && !lock.packages[at]!.link);
  const remove = [
    ...prunable(lock, keep).map((at) => join(root, at)),
    ...workspaces.flatMap((at) => workspaceLeftovers(join(root, at))),
    ...foreignOnnxRuntimeBinaries(root, process.platform, process.arch),
    join(root, 'node_modules/.bin'),
  ].filter((p) => existsSync(p));
  for (const path of remove) {
    if (dryRun) process.stdout.write(`would remove ${path}\n`);
    else rmSync(path, { recursive: true, force: true });
  }
  // After the packages are gone, so that only what stays is walked.
  const leftovers = dryRun ? [] : nodeModulesLeftovers(join(root, 'node_modules'));
  for (const ws of workspaces) leftovers.push(...(dryRun ? [] : nodeModulesLeftovers(join(root, ws, 'node_modules'))));
  for (const path of leftovers) rmSync(path, { force: true });
  if (!dryRun) for (const dir of emptyFolders(join(root, 'node_modules'))) rmSync(dir, { recursive: true });
  process.stdout.write(
    `${workspace}: kept ${keep.size} of ${Object.keys(lock.packages).length - 1} locations, removed ${remove.length} paths and ${leftovers.length} declaration, source map and Markdown files\n`,
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href)
  main(process.argv.slice(2));
