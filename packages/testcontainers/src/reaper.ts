import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getContainerRuntimeClient, ImageName } from 'testcontainers';
import { DEFAULT_REAPER_IMAGE } from './ryuk-env.js';

/**
 * The reaper testcontainers starts once per machine and session: ours (reaper/ryuk.mjs in an image built FROM
 * NODE_IMAGE, no pull), so that containers and networks of a test that dies are still removed.
 */
export type ReaperMode =
  /** The image testcontainers will start is present (ours, or one the user named in RYUK_CONTAINER_IMAGE). */
  | 'ready'
  /** TESTCONTAINERS_RYUK_DISABLED=true: nothing reaps a crashed run; FedNanoEnvironment.stop() still cleans up. */
  | 'disabled';

export interface ReaperOptions {
  /** Base image of the reaper (default NODE_IMAGE or node:20-bookworm-slim; the stand-in of scripts/base-images.sh). */
  nodeImage?: string;
  /** Without the reaper image, run with TESTCONTAINERS_RYUK_DISABLED=true instead of failing (default false). */
  fallbackToDisabled?: boolean;
  log?: (line: string) => void;
}

const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));
const REAPER_SOURCE = join(PACKAGE_ROOT, 'reaper/ryuk.mjs');
/** docker/reaper.Dockerfile of the repository, when the package sits in it (packages/testcontainers). */
export const REAPER_DOCKERFILE = join(PACKAGE_ROOT, '../../docker/reaper.Dockerfile');
/** What docker/reaper.Dockerfile says, for a package installed outside the repository (a test keeps them equal). */
export const EMBEDDED_REAPER_DOCKERFILE = `ARG NODE_IMAGE=node:20-bookworm-slim
FROM \${NODE_IMAGE}
COPY packages/testcontainers/reaper/ryuk.mjs /reaper/ryuk.mjs
LABEL org.opencontainers.image.title="fednano reaper" \\
      org.opencontainers.image.description="Ryuk-protocol reaper for testcontainers, built without pulling testcontainers/ryuk" \\
      org.opencontainers.image.licenses="Apache-2.0"
ENV RYUK_PORT=8080
EXPOSE 8080
ENTRYPOINT ["node", "/reaper/ryuk.mjs"]
`;

type ReaperModule = { REAPER_IMAGE: string };
const reaperModule = (): ReaperModule =>
  createRequire(import.meta.url)('testcontainers/build/reaper/reaper.js') as ReaperModule;

/** The reaper image testcontainers will start (RYUK_CONTAINER_IMAGE when it loaded, else testcontainers/ryuk). */
export function testcontainersReaperImage(): string {
  return reaperModule().REAPER_IMAGE;
}

/**
 * Builds the reaper image `ref` with the engine's classic builder (Engine API, no docker CLI or buildx), from a
 * context holding only docker/reaper.Dockerfile and reaper/ryuk.mjs. Takes about a second.
 */
export async function buildReaperImage(ref = DEFAULT_REAPER_IMAGE, nodeImage?: string): Promise<string> {
  const base = nodeImage ?? process.env.NODE_IMAGE ?? 'node:20-bookworm-slim';
  const client = await getContainerRuntimeClient();
  const context = await mkdtemp(join(tmpdir(), 'fednano-reaper-'));
  try {
    await mkdir(join(context, 'docker'));
    await mkdir(join(context, 'packages/testcontainers/reaper'), { recursive: true });
    const dockerfile = existsSync(REAPER_DOCKERFILE)
      ? readFileSync(REAPER_DOCKERFILE, 'utf8')
      : EMBEDDED_REAPER_DOCKERFILE;
    await writeFile(join(context, 'docker/reaper.Dockerfile'), dockerfile);
    await copyFile(REAPER_SOURCE, join(context, 'packages/testcontainers/reaper/ryuk.mjs'));
    await client.image.build(context, {
      t: ref,
      dockerfile: 'docker/reaper.Dockerfile',
      buildargs: { NODE_IMAGE: base },
      version: '1',
    });
  } finally {
    await rm(context, { recursive: true, force: true });
  }
  if (!(await client.image.exists(ImageName.fromString(ref))))
    throw new Error(
      `could not build the reaper image ${ref} FROM ${base} (docker/reaper.Dockerfile): is ${base} there? ` +
        `Where it cannot be pulled, make the local stand-in with \`bash scripts/base-images.sh\`, or set NODE_IMAGE`,
    );
  return ref;
}

let prepared: Promise<ReaperMode> | undefined;

/**
 * Makes sure the reaper image testcontainers will start exists, building ours when it is missing. Call before the
 * first container or network of the process (FedNanoEnvironment.start does). Once per process.
 */
export function prepareReaper(o: ReaperOptions = {}): Promise<ReaperMode> {
  prepared ??= (async (): Promise<ReaperMode> => {
    if (process.env.TESTCONTAINERS_RYUK_DISABLED === 'true') return 'disabled';
    const log = o.log ?? (() => {});
    const client = await getContainerRuntimeClient();
    // testcontainers reads RYUK_CONTAINER_IMAGE once, when it loads; where it was imported before this package set
    // it, its (writable, read-at-use) REAPER_IMAGE export is pointed at the image now chosen.
    const mod = reaperModule();
    const chosen = ImageName.fromString(process.env.RYUK_CONTAINER_IMAGE ?? DEFAULT_REAPER_IMAGE).string;
    if (mod.REAPER_IMAGE !== chosen) {
      log(`testcontainers was loaded with reaper image ${mod.REAPER_IMAGE}; using ${chosen}`);
      mod.REAPER_IMAGE = chosen;
    }
    if (await client.image.exists(ImageName.fromString(chosen))) return 'ready';
    // A reaper image the user named is theirs to provide (testcontainers pulls it); ours is built here.
    if (chosen !== ImageName.fromString(DEFAULT_REAPER_IMAGE).string) return 'ready';
    try {
      const t0 = Date.now();
      await buildReaperImage(chosen, o.nodeImage);
      log(`built the reaper image ${chosen} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      return 'ready';
    } catch (e) {
      if (!o.fallbackToDisabled) throw e;
      log(`reaper unavailable (${(e as Error).message}); TESTCONTAINERS_RYUK_DISABLED=true, stop() cleans up`);
      process.env.TESTCONTAINERS_RYUK_DISABLED = 'true';
      return 'disabled';
    }
  })();
  prepared.catch(() => {
    prepared = undefined;
  });
  return prepared;
}
