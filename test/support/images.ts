/**
 * The project's container images, for the suites that run them (images, testcontainers, control plane, k3s).
 *
 *   const why = await engineProblem();             // undefined, or why no container engine is usable here
 *   if (!why) {
 *     await ensureBaseImages();                     // node:20-bookworm-slim + debian:bookworm-slim, stand-ins if needed
 *     const refs = await buildAllImages();          // { operator: 'fednano/operator:0.1.0', ..., nats: 'fednano/nats:0.1.0' }
 *   }
 *
 * Builds go through the docker CLI with the classic builder (DOCKER_BUILDKIT=0: Debian's Engine 20.10 has no buildx;
 * FEDNANO_BUILDKIT=1 uses BuildKit instead), from the repository root, each streamed to `.tmp/images/<name>.log`.
 * The tag defaults to the root package.json version, which is the chart's appVersion and so the tag the chart's
 * images default to. Builds are serialised across processes (test files run in parallel), and repeated calls in one
 * process share one build; the engine's layer cache makes a rebuild of unchanged sources take seconds.
 *
 * Environment: NODE_IMAGE / DEBIAN_IMAGE (base images passed as build args), DOCKER_HOST (as for docker itself).
 */
import { execFile, spawn } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const LOGS = join(ROOT, '.tmp/images');

/** The images built from docker/<name>.Dockerfile. */
export const IMAGE_NAMES = ['operator', 'llm-host', 'aggregator', 'client-agent', 'nats'] as const;
export type ImageName = (typeof IMAGE_NAMES)[number];

/** The default tag: the root package.json version (= the chart's appVersion, 0.1.0). */
export const DEFAULT_TAG: string = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string })
  .version;

/** `fednano/<name>:<tag>`, the repository the chart's values name (images.*.repository). */
export const imageRef = (name: ImageName, tag = DEFAULT_TAG): string => `fednano/${name}:${tag}`;

async function docker(args: string[], timeoutMs = 60_000): Promise<string> {
  const { stdout } = await execFileAsync('docker', args, { encoding: 'utf8', timeout: timeoutMs });
  return stdout.trim();
}

const firstLine = (e: unknown): string => {
  const err = e as { code?: string; stderr?: string; message?: string };
  if (err.code === 'ENOENT') return 'the docker CLI is not on PATH';
  return (err.stderr?.trim() || err.message || String(e)).split('\n').find((l) => l.trim() !== '') ?? String(e);
};

/**
 * Why no container engine is usable here (a line naming what is missing and how to get it), or undefined when the
 * docker CLI reaches a running engine that can build and run Linux containers.
 */
export async function engineProblem(): Promise<string | undefined> {
  if (process.env.FEDNANO_SKIP_IMAGES) return 'FEDNANO_SKIP_IMAGES is set';
  let os: string;
  try {
    os = await docker(['version', '--format', '{{.Server.Os}}'], 15_000);
  } catch (e) {
    const why = firstLine(e);
    return why === 'the docker CLI is not on PATH'
      ? `${why} (apt-get install -y docker.io, then start dockerd)`
      : `the docker engine does not answer: ${why} (start dockerd, or check DOCKER_HOST)`;
  }
  if (os !== 'linux') return `the docker engine runs ${os} containers, not linux`;
  return undefined;
}

/** Runs `fn` holding a lock shared by every process of this checkout (a directory created atomically). */
async function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const dir = join(LOGS, `${name}.lock`);
  await mkdir(LOGS, { recursive: true });
  for (;;) {
    try {
      await mkdir(dir);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(await readFile(join(dir, 'pid'), 'utf8').catch(() => ''));
      let alive = true;
      if (pid > 0) {
        try {
          process.kill(pid, 0);
        } catch {
          alive = false;
        }
      }
      if (!alive) await rm(dir, { recursive: true, force: true });
      else await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    await writeFile(join(dir, 'pid'), String(process.pid));
    return await fn();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs a command with its output appended to `log`; on failure, throws with the log's last lines. */
async function logged(what: string, cmd: string, args: string[], log: string, env?: NodeJS.ProcessEnv): Promise<void> {
  await mkdir(LOGS, { recursive: true });
  const out = createWriteStream(log, { flags: 'a' });
  await new Promise<void>((r) => out.write(`$ ${cmd} ${args.join(' ')}\n`, () => r()));
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(out, { end: false });
    child.stderr.pipe(out, { end: false });
    child.on('error', reject);
    child.on('close', resolve);
  });
  await new Promise<void>((r) => out.end(() => r()));
  if (code !== 0) {
    const tail = (await readFile(log, 'utf8')).trimEnd().split('\n').slice(-40).join('\n');
    throw new Error(`${what} failed (exit ${code}); last lines of ${log}:\n${tail}`);
  }
}

let baseImages: Promise<void> | undefined;

/**
 * Makes node:20-bookworm-slim and debian:bookworm-slim available (present, pulled, or local stand-ins made by
 * scripts/base-images.sh: about a minute the first time, a fraction of a second after). Once per process.
 */
export function ensureBaseImages(): Promise<void> {
  const log = join(LOGS, 'base-images.log');
  baseImages ??= withLock('base', async () => {
    await rm(log, { force: true });
    await logged('scripts/base-images.sh', 'bash', [join(ROOT, 'scripts/base-images.sh')], log);
  });
  return baseImages;
}

/** Whether an image is a local stand-in made by scripts/base-images.sh. */
async function isStandIn(ref: string): Promise<boolean> {
  const label = await docker(['image', 'inspect', '-f', '{{ index .Config.Labels "io.fednano.stand-in" }}', ref]).catch(
    () => '',
  );
  return label === 'true';
}

const builds = new Map<string, Promise<string>>();

/**
 * Builds docker/<name>.Dockerfile as `fednano/<name>:<tag>` (after ensureBaseImages) and returns that reference. The
 * build log is `.tmp/images/<name>.log`; a failure throws with its last lines.
 */
export function buildImage(name: ImageName, tag = DEFAULT_TAG): Promise<string> {
  const ref = imageRef(name, tag);
  let build = builds.get(ref);
  if (!build) {
    build = (async () => {
      await ensureBaseImages();
      const base =
        name === 'nats'
          ? (process.env.DEBIAN_IMAGE ?? 'debian:bookworm-slim')
          : (process.env.NODE_IMAGE ?? 'node:20-bookworm-slim');
      const args = ['build', '-f', `docker/${name}.Dockerfile`, '-t', ref];
      args.push('--build-arg', `${name === 'nats' ? 'DEBIAN_IMAGE' : 'NODE_IMAGE'}=${base}`);
      // The stand-in holds the host's CA bundle: npm in the build stage trusts a TLS proxy the host trusts.
      if (name !== 'nats' && (await isStandIn(base)))
        args.push('--build-arg', 'NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt');
      args.push('.');
      const log = join(LOGS, `${name}.log`);
      await rm(log, { force: true });
      const t0 = Date.now();
      await withLock('build', () =>
        logged(`docker build of ${ref}`, 'docker', args, log, {
          DOCKER_BUILDKIT: process.env.FEDNANO_BUILDKIT === '1' ? '1' : '0',
        }),
      );
      process.stderr.write(`images: built ${ref} in ${((Date.now() - t0) / 1000).toFixed(1)} s (log ${log})\n`);
      return ref;
    })();
    builds.set(ref, build);
    build.catch(() => builds.delete(ref));
  }
  return build;
}

/** Builds every image (one after another: they share their first layers) and returns their references by name. */
export async function buildAllImages(tag = DEFAULT_TAG): Promise<Record<ImageName, string>> {
  const refs = {} as Record<ImageName, string>;
  for (const name of IMAGE_NAMES) refs[name] = await buildImage(name, tag);
  return refs;
}

export interface ImageFacts {
  /** Uncompressed size in bytes, as `docker images` reports it. */
  size: number;
  /** Config.User, e.g. '65532:65532'. */
  user: string;
  entrypoint: string[];
  labels: Record<string, string>;
}

/** What `docker image inspect` says about an image that matters to the suites. */
export async function inspectImage(ref: string): Promise<ImageFacts> {
  const [info] = JSON.parse(await docker(['image', 'inspect', ref])) as {
    Size: number;
    Config: { User: string; Entrypoint: string[] | null; Labels: Record<string, string> | null };
  }[];
  if (!info) throw new Error(`no image ${ref}`);
  return {
    size: info.Size,
    user: info.Config.User,
    entrypoint: info.Config.Entrypoint ?? [],
    labels: info.Config.Labels ?? {},
  };
}
