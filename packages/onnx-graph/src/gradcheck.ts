import { DType } from './dtype.js';
import type { Graph } from './graph.js';
import { LocalSession } from './session/local.js';
import { randn, rng, type Tensor } from './tensor.js';
import { GraphError } from './types.js';
import { vjp } from './vjp.js';

/**
 * Tolerances for comparing the analytic gradient g_a with the central finite difference g_n of one coordinate:
 * |g_a - g_n| <= atol + rtol * max(|g_a|, |g_n|).
 *
 * float64: step 1e-5 leaves a truncation error ~h^2 f''' = 1e-10 f''', so rtol 1e-6 and atol 1e-8 leave a wide
 * margin while still catching any wrong rule (the errors of those are O(gradient)).
 * float32 (only for operators ONNX Runtime has no float64 kernel for, e.g. Erf, exact Gelu): step 1e-2 balances
 * truncation ~1e-4 against rounding ~1e-5, hence rtol 1e-2 and atol 1e-3.
 *
 * On top of atol, the finite difference itself cannot resolve less than the rounding of the objective it
 * differences: sum_i |seed_i y_i| * eps / (2h). Contracting a large output (hundreds of elements) raises that floor
 * above 1e-8 in float64, so atol is raised to NOISE_FACTOR times the floor measured for each check.
 */
export const TOLERANCES = {
  [DType.DOUBLE]: { step: 1e-5, rtol: 1e-6, atol: 1e-8, eps: 2 ** -52 },
  [DType.FLOAT]: { step: 1e-2, rtol: 1e-2, atol: 1e-3, eps: 2 ** -23 },
} as const;
export const NOISE_FACTOR = 4;

export interface GradCheckOptions {
  /** The output to differentiate. A non-scalar output is contracted with a fixed random seed tensor. */
  of: string;
  /** Inputs or initializers to check. */
  wrt: string[];
  /** Values for the graph inputs (those missing are drawn from N(0,1); integer inputs must be given). */
  feeds?: Record<string, Tensor>;
  /** Check at most this many coordinates per wrt tensor, chosen at random (default: all). */
  maxCoordinates?: number;
  seed?: number;
  step?: number;
  rtol?: number;
  atol?: number;
}

export interface GradCheckReport {
  ok: boolean;
  checked: number;
  maxAbsError: number;
  maxRelError: number;
  /** The absolute tolerance used: the requested one, or the finite difference's rounding floor if higher. */
  atol: number;
  /** The worst coordinate, for error messages. */
  worst?: { wrt: string; index: number; analytic: number; numeric: number };
}

/** Compares vjp() against central finite differences through ONNX Runtime. */
export async function gradCheck(graph: Graph, options: GradCheckOptions): Promise<GradCheckReport> {
  const random = rng(options.seed ?? 1);
  const g = graph.clone();
  const feeds: Record<string, Tensor> = { ...options.feeds };
  for (const w of options.wrt) if (g.initializers.has(w)) feeds[w] = copy(g.promoteToInput(w));
  for (const input of g.inputs) {
    if (feeds[input.name]) continue;
    if (input.dtype !== DType.FLOAT && input.dtype !== DType.DOUBLE)
      throw new GraphError(`gradCheck needs a value for integer input '${input.name}'`);
    if (input.shape.some((d) => typeof d !== 'number'))
      throw new GraphError(`input '${input.name}' has a symbolic shape; feed it`);
    feeds[input.name] = randn(input.dtype, input.shape as number[], random);
  }
  const dtype = g.typeOf(options.of).dtype;
  const tol = { ...(TOLERANCES[dtype as DType.FLOAT | DType.DOUBLE] ?? TOLERANCES[DType.FLOAT]) };
  const step = options.step ?? tol.step;
  const rtol = options.rtol ?? tol.rtol;

  const { graph: withGrad, gradients, seeds } = vjp(g, { of: options.of, wrt: options.wrt });
  const forward = await LocalSession.create(g);
  const backward = await LocalSession.create(withGrad);
  try {
    const forwardFeeds = { ...feeds };
    const seedName = seeds[options.of];
    if (seedName) {
      // The seed takes the output's run-time shape (symbolic dims are only known once the graph runs).
      const out = (await forward.run(forwardFeeds, [options.of]))[options.of]!;
      feeds[seedName] = randn(dtype, [...out.dims], random);
    }
    const seed = seedName ? feeds[seedName] : undefined;
    const analytic = await backward.run(feeds);
    let magnitude = 0; // sum of |seed_i y_i|, for the rounding floor of the finite difference
    const objective = async (): Promise<number> => {
      const out = (await forward.run(forwardFeeds, [options.of]))[options.of]!;
      let s = 0;
      magnitude = 0;
      for (let i = 0; i < out.data.length; i++) {
        const term = Number(out.data[i]) * (seed ? Number(seed.data[i]) : 1);
        s += term;
        magnitude += Math.abs(term);
      }
      return s;
    };
    await objective();
    const atol = Math.max(options.atol ?? tol.atol, (NOISE_FACTOR * magnitude * tol.eps) / (2 * step));
    const report: GradCheckReport = { ok: true, checked: 0, maxAbsError: 0, maxRelError: 0, atol };
    let worstExcess = Number.NEGATIVE_INFINITY;
    for (const w of options.wrt) {
      const x = feeds[w]!.data as Float64Array | Float32Array;
      const grad = analytic[gradients[w]!]!.data as Float64Array | Float32Array;
      for (const index of pick(x.length, options.maxCoordinates, random)) {
        const orig = x[index]!;
        x[index] = orig + step;
        const plus = await objective();
        x[index] = orig - step;
        const minus = await objective();
        x[index] = orig;
        const numeric = (plus - minus) / (2 * step);
        const a = grad[index]!;
        const abs = Math.abs(a - numeric);
        const scale = Math.max(Math.abs(a), Math.abs(numeric));
        report.checked++;
        report.maxAbsError = Math.max(report.maxAbsError, abs);
        if (scale > atol) report.maxRelError = Math.max(report.maxRelError, abs / scale);
        const excess = abs - (atol + rtol * scale);
        if (!(excess <= 0)) report.ok = false; // also false for NaN
        if (excess > worstExcess || Number.isNaN(excess)) {
          worstExcess = Number.isNaN(excess) ? Number.POSITIVE_INFINITY : excess;
          report.worst = { wrt: w, index, analytic: a, numeric };
        }
      }
    }
    return report;
  } finally {
    await forward.close();
    await backward.close();
  }
}

function copy(t: Tensor): Tensor {
  return { ...t, data: t.data.slice() };
}

function pick(n: number, max: number | undefined, random: () => number): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  if (max === undefined || max >= n) return all;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all.slice(0, max).sort((a, b) => a - b);
}
