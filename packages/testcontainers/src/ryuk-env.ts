/**
 * Imported first by the package's index, before anything imports testcontainers: testcontainers reads
 * RYUK_CONTAINER_IMAGE once, when its reaper module loads. Points it at the project's reaper image (built from
 * docker/reaper.Dockerfile) unless the user chose a reaper image or disabled the reaper.
 */
import { readFileSync } from 'node:fs';

export const PACKAGE_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** The reaper image the package builds and uses: `fednano/reaper:<package version>`. */
export const DEFAULT_REAPER_IMAGE = `fednano/reaper:${PACKAGE_VERSION}`;

if (process.env.RYUK_CONTAINER_IMAGE === undefined && process.env.TESTCONTAINERS_RYUK_DISABLED !== 'true')
  process.env.RYUK_CONTAINER_IMAGE = DEFAULT_REAPER_IMAGE;
