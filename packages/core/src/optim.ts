/**
 * Optimizers over named Float32Array parameters, updated in place. Deterministic: plain loops in a fixed order.
 */
export type Params = Map<string, Float32Array>;

export interface Optimizer {
  /** Learning rate of the next step (schedules set it before each step). */
  lr: number;
  step(params: Params, grads: Params): void;
}

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (Loshchilov & Hutter), applied as w -= lr * wd * w. */
  weightDecay?: number;
  /** Which parameters decay (default: all with 'weight' in their name, i.e. not biases, norms or tables). */
  decays?: (name: string) => boolean;
}

export class AdamW implements Optimizer {
  lr: number;
  private t = 0;
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();

  constructor(private readonly options: AdamWOptions) {
    this.lr = options.lr;
  }

  step(params: Params, grads: Params): void {
    const { beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0 } = this.options;
    const decays = this.options.decays ?? ((n: string) => /weight$/.test(n));
    this.t++;
    const c1 = 1 - beta1 ** this.t;
    const c2 = 1 - beta2 ** this.t;
    for (const [name, w] of params) {
      const g = gradFor(grads, name, w);
      const m = state(this.m, name, w.length);
      const v = state(this.v, name, w.length);
      const decay = weightDecay > 0 && decays(name) ? 1 - this.lr * weightDecay : 1;
      for (let i = 0; i < w.length; i++) {
        const gi = g[i]!;
        m[i] = beta1 * m[i]! + (1 - beta1) * gi;
        v[i] = beta2 * v[i]! + (1 - beta2) * gi * gi;
        w[i] = w[i]! * decay - (this.lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + eps);
      }
    }
  }
}

export interface SgdOptions {
  lr: number;
  momentum?: number;
  nesterov?: boolean;
  weightDecay?: number;
}

/** SGD with optional (Nesterov) momentum and L2 weight decay added to the gradient. */
export class Sgd implements Optimizer {
  lr: number;
  private readonly velocity = new Map<string, Float32Array>();

  constructor(private readonly options: SgdOptions) {
    this.lr = options.lr;
  }

  step(params: Params, grads: Params): void {
    const { momentum = 0, nesterov = false, weightDecay = 0 } = this.options;
    for (const [name, w] of params) {
      const g = gradFor(grads, name, w);
      const buf = momentum > 0 ? state(this.velocity, name, w.length) : undefined;
      for (let i = 0; i < w.length; i++) {
        let d = g[i]! + weightDecay * w[i]!;
        if (buf) {
          buf[i] = momentum * buf[i]! + d;
          d = nesterov ? d + momentum * buf[i]! : buf[i]!;
        }
        w[i] = w[i]! - this.lr * d;
      }
    }
  }
}

/** Scales all gradients so their joint L2 norm is at most maxNorm; returns the norm before clipping. */
export function clipGradNorm(grads: Params, maxNorm: number): number {
  let sq = 0;
  for (const g of grads.values()) for (let i = 0; i < g.length; i++) sq += g[i]! * g[i]!;
  const norm = Math.sqrt(sq);
  if (Number.isFinite(maxNorm) && norm > maxNorm) {
    const scale = maxNorm / (norm + 1e-12);
    for (const g of grads.values()) for (let i = 0; i < g.length; i++) g[i]! *= scale;
  }
  return norm;
}

/** Linear warm-up to baseLr, then cosine decay to minLr at totalSteps. step counts from 0. */
export function cosineSchedule(step: number, totalSteps: number, baseLr: number, warmupSteps = 0, minLr = 0): number {
  if (step < warmupSteps) return (baseLr * (step + 1)) / warmupSteps;
  const progress = Math.min(1, (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
  return minLr + 0.5 * (baseLr - minLr) * (1 + Math.cos(Math.PI * progress));
}

function gradFor(grads: Params, name: string, w: Float32Array): Float32Array {
  const g = grads.get(name);
  if (!g) throw new Error(`no gradient for parameter '${name}'`);
  if (g.length !== w.length) throw new Error(`gradient of '${name}' has ${g.length} values, the parameter ${w.length}`);
  return g;
}

function state(store: Map<string, Float32Array>, name: string, n: number): Float32Array {
  let s = store.get(name);
  if (!s) {
    s = new Float32Array(n);
    store.set(name, s);
  }
  return s;
}
