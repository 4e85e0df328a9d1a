/**
 * npm run bench:vjp — cost of the appended backward pass through ONNX Runtime.
 *
 * For a pre-norm decoder block at three sizes, times the forward graph and the forward+VJP graph in the same run and
 * reports their ratio for two cases: the gradient w.r.t. the block input only (what the llm-host serves; a
 * well-built backward costs about one more forward per matmul, so about 2x) and w.r.t. the input and all weights
 * (pretraining; about 3x). Sessions run in alternating blocks so their thread pools do not fight over the cores.
 *
 * Flags: --quick (fewer repetitions), --threads N (intra-op threads, default 2).
 */
import { parseArgs } from 'node:util';
import { DType, Graph, LocalSession, randn, rng, type Tensor, vjp } from '../packages/onnx-graph/src/index.js';
import { type BlockConfig, Layers, seededInit } from '../packages/onnx-graph/src/nn.js';
import { median, printResult, printTable, round } from './report.js';

const { values: flags } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, threads: { type: 'string', default: '2' } },
});
const threads = Number(flags.threads);
const rounds = flags.quick ? 3 : 7;

const SIZES = [
  { d: 64, seq: 32, heads: 4 },
  { d: 128, seq: 64, heads: 4 },
  { d: 256, seq: 64, heads: 8 },
];
const BATCH = 8;

function blockGraph(d: number, seq: number, heads: number): { g: Graph; y: string; params: string[] } {
  const g = new Graph({ name: `decoder_block_d${d}` });
  const layers = new Layers(g, seededInit(1));
  const cfg: BlockConfig = { dModel: d, heads, gelu: 'tanh' };
  const x = g.input('x', DType.FLOAT, [BATCH, seq, d]);
  const y = layers.decoderBlock(x, 'block', cfg, layers.causalMask(x));
  g.output(y);
  return { g, y, params: layers.params };
}

/** Mean milliseconds per run over `reps` runs. */
async function timeRuns(session: LocalSession, feeds: Record<string, Tensor>, reps: number): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < reps; i++) await session.run(feeds);
  return (performance.now() - start) / reps;
}

const rows: (string | number)[][] = [];
const result: Record<string, number> = {};
for (const { d, seq, heads } of SIZES) {
  const { g, y, params } = blockGraph(d, seq, heads);
  const random = rng(d);
  const x = randn(DType.FLOAT, [BATCH, seq, d], random);
  const dy = randn(DType.FLOAT, [BATCH, seq, d], random);
  const wrtInput = vjp(g, { of: y, wrt: ['x'] });
  const wrtAll = vjp(g, { of: y, wrt: ['x', ...params] });
  const config = { intraOpThreads: threads };
  const sessions = {
    forward: await LocalSession.create(g, config),
    input: await LocalSession.create(wrtInput.graph, config),
    all: await LocalSession.create(wrtAll.graph, config),
  };
  const feeds = {
    forward: { x },
    input: { x, [wrtInput.seeds[y]!]: dy },
    all: { x, [wrtAll.seeds[y]!]: dy },
  };
  // Size the blocks to ~150 ms of forward work each.
  const probe = await timeRuns(sessions.forward, feeds.forward, 3);
  const reps = Math.max(3, Math.round(150 / Math.max(probe, 0.05)));
  const times = { forward: [] as number[], input: [] as number[], all: [] as number[] };
  for (const k of ['forward', 'input', 'all'] as const) await timeRuns(sessions[k], feeds[k], reps); // warm-up
  for (let r = 0; r < rounds; r++)
    for (const k of ['forward', 'input', 'all'] as const) times[k].push(await timeRuns(sessions[k], feeds[k], reps));
  const fwd = median(times.forward);
  const inputRatio = median(times.input) / fwd;
  const allRatio = median(times.all) / fwd;
  rows.push([
    `d=${d} seq=${seq} heads=${heads} batch=${BATCH}`,
    round(fwd, 3),
    round(median(times.input), 3),
    round(inputRatio, 2),
    round(median(times.all), 3),
    round(allRatio, 2),
  ]);
  result[`input_ratio_d${d}`] = inputRatio;
  result[`all_ratio_d${d}`] = allRatio;
  for (const s of Object.values(sessions)) await s.close();
}

printTable(['decoder block', 'forward ms', 'fwd+vjp(x) ms', 'ratio', 'fwd+vjp(x,W) ms', 'ratio'], rows);
process.stdout.write(`targets: ratio(x) <= 2.5, ratio(x,W) <= 3.5; ${threads} intra-op threads, ${rounds} rounds\n`);
const inputMax = Math.max(...SIZES.map(({ d }) => result[`input_ratio_d${d}`]!));
const allMax = Math.max(...SIZES.map(({ d }) => result[`all_ratio_d${d}`]!));
printResult({ ...result, input_ratio_max: inputMax, all_ratio_max: allMax });
