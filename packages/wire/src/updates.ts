import { createHash } from 'node:crypto';
import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { headers, type MsgHdrs, type NatsConnection } from '@nats-io/nats-core';
import type { ObjectStore } from '@nats-io/obj';
import {
  dedupeId,
  type FederationRef,
  UPDATE_REF_HEADER,
  UPDATE_SHA256_HEADER,
  updateObject,
  updateSubject,
} from './names.js';

/** Room left in a message for headers and protocol framing when deciding whether an update fits inline. */
const HEADROOM_BYTES = 4096;

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/**
 * Attempts of one update publish. A publish that times out (the connection broke, or nats-server restarted, between
 * the write and its acknowledgement) is sent again with the same message id: if the first one was stored, the
 * stream's de-duplication drops the second and acknowledges it as a duplicate, so retrying cannot count twice.
 */
const PUBLISH_ATTEMPTS = 6;

export interface PublishedUpdate {
  ack: PubAck;
  /** True when the payload went to the Object Store and the message carries a reference. */
  byReference: boolean;
}

/**
 * Publishes an encoded update with its de-duplication id. Updates larger than the server's `max_payload` are stored
 * in the uploads Object Store first and the message carries the object's name and hash instead; a retry finds the
 * object it already stored and does not write it again.
 */
export async function publishUpdate(
  nc: NatsConnection,
  js: JetStreamClient,
  uploads: ObjectStore,
  f: FederationRef,
  round: number,
  client: string,
  bytes: Uint8Array,
): Promise<PublishedUpdate> {
  const subject = updateSubject(f, round, client);
  const msgID = dedupeId(f, round, client);
  const maxPayload = nc.info?.max_payload ?? 1 << 20;
  if (bytes.length + HEADROOM_BYTES <= maxPayload)
    return { ack: await js.publish(subject, bytes, { msgID, retries: PUBLISH_ATTEMPTS }), byReference: false };
  const hash = sha256(bytes);
  const name = updateObject(f, round, client, hash);
  const stored = await uploads.info(name);
  if (!stored || stored.deleted || stored.size !== bytes.length) await uploads.putBlob({ name }, bytes);
  const h = headers();
  h.set(UPDATE_REF_HEADER, name);
  h.set(UPDATE_SHA256_HEADER, hash);
  return {
    ack: await js.publish(subject, new Uint8Array(), { msgID, headers: h, retries: PUBLISH_ATTEMPTS }),
    byReference: true,
  };
}

export class PayloadError extends Error {
  override name = 'PayloadError';
}

/** The update bytes of a message: inline, or fetched from the uploads store and checked against the header hash. */
export async function updatePayload(
  m: { data: Uint8Array; headers?: MsgHdrs },
  uploads: ObjectStore,
): Promise<{ bytes: Uint8Array; byReference: boolean }> {
  const name = m.headers?.get(UPDATE_REF_HEADER);
  if (!name) return { bytes: m.data, byReference: false };
  const bytes = await uploads.getBlob(name);
  if (!bytes) throw new PayloadError(`referenced update object '${name}' does not exist`);
  const want = m.headers?.get(UPDATE_SHA256_HEADER);
  if (sha256(bytes) !== want) throw new PayloadError(`referenced update object '${name}' does not match its sha256`);
  return { bytes, byReference: true };
}
