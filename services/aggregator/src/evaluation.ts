import type { AdapterConfig, AdapterWeights, EvaluationResult } from '@fednano/core';
import { ShardError } from '@fednano/data';
import { HeldOutSet } from '@fednano/simulation';

/** Scores a new global adapter on the federation's held-out set. */
export interface RoundEvaluator {
  evaluate(adapter: AdapterConfig, weights: AdapterWeights): Promise<EvaluationResult>;
  close(): Promise<void>;
}

/**
 * The held-out shard at `dataPath`, scored with the frozen model of `modelPath` in this process. The set is opened
 * at the first round that needs it and kept; when opening fails (the volume is missing, the shard is corrupt) the
 * next round tries again, so fixing the volume needs no restart.
 */
export class HeldOutEvaluator implements RoundEvaluator {
  private set?: Promise<HeldOutSet>;

  constructor(
    private readonly modelPath: string,
    private readonly dataPath: string,
  ) {}

  async evaluate(adapter: AdapterConfig, weights: AdapterWeights): Promise<EvaluationResult> {
    this.set ??= HeldOutSet.open(this.modelPath, this.dataPath).catch((e: Error) => {
      this.set = undefined;
      throw e instanceof ShardError
        ? new ShardError(
            `${e.message} (the held-out set of --evaluation-data ${this.dataPath}, a Federation's spec.evaluation.dataVolume: put a shard there)`,
          )
        : e;
    });
    return (await this.set).score(adapter, weights);
  }

  async close(): Promise<void> {
    const set = await this.set?.catch(() => undefined);
    await set?.close();
  }
}
