import ort from 'onnxruntime-node';
import type { Graph } from '../graph.js';
import { encodeModel } from '../onnx-io.js';
import { type Feeds, fromOrt, type Results, type SessionConfig, sessionOptions, toOrt } from './convert.js';

/** An ONNX Runtime session on the calling thread: simplest to use, but run() blocks the event loop while it works. */
export class LocalSession {
  private constructor(private readonly session: ort.InferenceSession) {}

  static async create(model: Graph | Uint8Array, config: SessionConfig = {}): Promise<LocalSession> {
    const bytes = model instanceof Uint8Array ? model : encodeModel(model);
    return new LocalSession(await ort.InferenceSession.create(bytes, sessionOptions(config)));
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  async run(feeds: Feeds, outputs?: string[]): Promise<Results> {
    const ortFeeds = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, toOrt(v)]));
    const result = outputs ? await this.session.run(ortFeeds, outputs) : await this.session.run(ortFeeds);
    return Object.fromEntries(Object.entries(result).map(([k, v]) => [k, fromOrt(v as ort.Tensor)]));
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** Builds a session, runs it once and releases it: for tests and one-off evaluations. */
export async function runOnce(model: Graph | Uint8Array, feeds: Feeds, config?: SessionConfig): Promise<Results> {
  const s = await LocalSession.create(model, config);
  try {
    return await s.run(feeds);
  } finally {
    await s.close();
  }
}
