import { parentPort } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import type { Tensor } from '../tensor.js';
import { fromOrt, sessionOptions, toOrt } from './convert.js';
import { type FromWorker, type ToWorker, transferables } from './protocol.js';

/** The worker side of WorkerSession: owns one ONNX Runtime session and runs it off the main event loop. */
const port = parentPort;
if (!port) throw new Error('session worker must run in a worker thread');

let session: ort.InferenceSession | undefined;
const send = (message: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

port.on('message', async (message: ToWorker) => {
  try {
    if (message.type === 'init') {
      session = await ort.InferenceSession.create(message.model, sessionOptions(message.config));
      send({ type: 'ready', inputNames: [...session.inputNames], outputNames: [...session.outputNames] });
    } else if (message.type === 'run') {
      if (!session) throw new Error('session is not initialised');
      const feeds = Object.fromEntries(Object.entries(message.feeds).map(([k, v]) => [k, toOrt(v)]));
      const pre = message.preallocated ?? {};
      const names = message.outputs ?? session.outputNames;
      // Preallocated outputs are written in place by ONNX Runtime; the others it allocates.
      const fetches = Object.fromEntries(names.map((n) => [n, pre[n] ? toOrt(pre[n]) : null]));
      const raw = await session.run(feeds, fetches as ort.InferenceSession.FetchesType);
      const results: Record<string, Tensor> = {};
      for (const n of names) results[n] = pre[n] ?? fromOrt(raw[n] as ort.Tensor);
      send({ type: 'result', id: message.id, results }, transferables(Object.values(results)));
    } else {
      await session?.release();
      session = undefined;
      send({ type: 'closed' });
      port.close();
    }
  } catch (e) {
    send({ type: 'error', id: message.type === 'run' ? message.id : undefined, message: (e as Error).message });
  }
});
