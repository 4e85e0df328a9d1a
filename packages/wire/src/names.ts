/**
 * NATS names, one place (see CONVENTIONS.md "Messaging names"). Namespace, federation and client names become
 * subject tokens, so they are restricted to Kubernetes DNS labels: no dots, wildcards or spaces.
 */
export const UPDATES_STREAM = 'FEDNANO_UPDATES';
export const ROUNDS_BUCKET = 'fednano-rounds';
export const ADAPTERS_BUCKET = 'fednano-adapters';
/**
 * Updates too large for one message, stored by reference. A bucket apart from the adapters so that clients, who
 * must write here, get no write access to the global adapters.
 */
export const UPLOADS_BUCKET = 'fednano-uploads';

const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function checkName(what: string, value: string): string {
  if (!LABEL.test(value))
    throw new Error(
      `${what} '${value}' is not a valid name: use lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters`,
    );
  return value;
}

export interface FederationRef {
  namespace: string;
  federation: string;
}

/** A round number, or '*' for any round (subject permissions). */
type RoundToken = number | '*';

export const updateSubject = (f: FederationRef, round: RoundToken, client: string): string =>
  `fednano.${f.namespace}.${f.federation}.round.${round}.update.${client}`;

/** Every update of one federation (any round, any client): the aggregator's consumer filter. */
export const federationUpdatesFilter = (f: FederationRef): string =>
  `fednano.${f.namespace}.${f.federation}.round.*.update.*`;

export const progressSubject = (f: FederationRef, round: RoundToken, client: string): string =>
  `fednano.${f.namespace}.${f.federation}.round.${round}.progress.${client}`;

export const progressFilter = (f: FederationRef, round: number): string =>
  `fednano.${f.namespace}.${f.federation}.round.${round}.progress.*`;

/** Parses an update subject back into round and client; undefined when it is not one. */
export function parseUpdateSubject(subject: string): (FederationRef & { round: number; client: string }) | undefined {
  const p = subject.split('.');
  if (p.length !== 7 || p[0] !== 'fednano' || p[3] !== 'round' || p[5] !== 'update') return undefined;
  const round = Number(p[4]);
  if (!Number.isInteger(round) || round < 1) return undefined;
  return { namespace: p[1]!, federation: p[2]!, round, client: p[6]! };
}

export const roundKey = (f: FederationRef, round: number): string => `${f.namespace}.${f.federation}.${round}`;
export const federationRoundsKeys = (f: FederationRef): string => `${f.namespace}.${f.federation}.>`;

/** The global adapter after round n (round 0: the initial adapter). */
export const adapterObject = (f: FederationRef, round: number): string =>
  `${f.namespace}/${f.federation}/round-${round}`;

/**
 * An update too large for one message, stored by reference in the uploads bucket. The payload's hash is part of the
 * name, so a retried upload of the same bytes finds its object and a different payload never overwrites one (clients
 * have no right to purge).
 */
export const updateObject = (f: FederationRef, round: number, client: string, sha256hex: string): string =>
  `${f.namespace}/${f.federation}/round-${round}/update-${client}-${sha256hex.slice(0, 16)}`;

export const dedupeId = (f: FederationRef, round: number, client: string): string =>
  `${f.namespace}/${f.federation}/${round}/${client}`;

export const aggregatorDurable = (f: FederationRef): string => `aggregator-${f.namespace}-${f.federation}`;

/** Header on an update message whose payload lives in the Object Store: the object's name. */
export const UPDATE_REF_HEADER = 'Fednano-Update-Object';
/** Header with the hex sha256 of the referenced payload. */
export const UPDATE_SHA256_HEADER = 'Fednano-Update-Sha256';
