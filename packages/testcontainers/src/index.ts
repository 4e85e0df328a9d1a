// First: sets RYUK_CONTAINER_IMAGE before testcontainers loads (it reads it once).
import './ryuk-env.js';

export {
  type AgentOutcome,
  DEFAULT_IMAGES,
  type Evaluation,
  FedNanoEnvironment,
  type FedNanoEnvironmentOptions,
  type FedNanoImages,
  RoundFailedError,
  type RoundOptions,
  type RoundResult,
} from './environment.js';
export {
  buildReaperImage,
  prepareReaper,
  type ReaperMode,
  type ReaperOptions,
  testcontainersReaperImage,
} from './reaper.js';
export { DEFAULT_REAPER_IMAGE, PACKAGE_VERSION } from './ryuk-env.js';
