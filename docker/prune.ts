/**
 * Prunes a full `npm ci` of this workspace down to what one program needs at run time, for the images in docker/.
 *
 *   node --import tsx docker/prune.ts services/llm-host [--dry-run]
 *
 * Keeps: the named workspace, the workspaces and packages its `dependencies` reach (transitively, resolved the way
 * Node resolves them, from package-lock.json), and `tsx` with its dependencies (the bin scripts run the TypeScript
 * sources through it). Removes every other package and workspace, and the onnxruntime-node binaries built for other
 * platforms than this one. devDependencies of the workspaces are never followed.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
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

/** Root devDependencies that the images need at run time. */
export const RUNTIME_ROOT_PACKAGES = ['tsx'] as const;

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
export function runtimeClosure(lock: Lockfile, workspace: string): Set<string> {
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
      const dep = resolveDependency(lock, at, name);
      if (dep === undefined) throw new Error(`${at} depends on ${name}, which package-lock.json does not hold`);
      queue.push(dep);
    }
    // Optional dependencies for other platforms, and peers nobody installed, are simply absent.
    for (const name of [...optional, ...peers]) {
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

function main(argv: string[]): void {
  const workspace = argv.find((a) => !a.startsWith('--'));
  const dryRun = argv.includes('--dry-run');
  if (workspace === undefined) {
    process.stderr.write('usage: node --import tsx docker/prune.ts <workspace folder> [--dry-run]\n');
    process.exit(2);
  }
  const root = process.cwd();
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as Lockfile;
  const keep = runtimeClosure(lock, workspace.replace(/\/+$/, ''));
  const remove = [
    ...prunable(lock, keep).map((at) => join(root, at)),
    ...foreignOnnxRuntimeBinaries(root, process.platform, process.arch),
    join(root, 'node_modules/.bin'),
  ].filter((p) => existsSync(p));
  for (const path of remove) {
    if (dryRun) process.stdout.write(`would remove ${path}\n`);
    else rmSync(path, { recursive: true, force: true });
  }
  process.stdout.write(
    `${workspace}: kept ${keep.size} of ${Object.keys(lock.packages).length - 1} locations, removed ${remove.length} paths\n`,
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href)
  main(process.argv.slice(2));
