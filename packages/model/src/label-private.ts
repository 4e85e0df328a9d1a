import { decodeModel, encodeModel, vjp } from '@fednano/onnx-graph';
import { llmAnswerLogitsGraph, type Weights } from './architecture.js';
import type { ModelConfig } from './config.js';

/** The ONNX files an llm-host needs for label-private split training (see llmAnswerLogitsGraph). */
export interface LabelPrivateParts {
  /** inputs_embeds, positions -> answer_logits [B, K, V]. */
  answerLogits: Uint8Array;
  /** inputs_embeds, positions, answer_logits_grad [B, K, V] -> grad_inputs_embeds [B, T, d]. */
  answerLogitsVjp: Uint8Array;
}

/**
 * Builds the label-private graphs from the llm.onnx the host already loads (its initializers are the LM's weights),
 * so the committed model folder needs no new files and the graphs always match the served model. Takes well under a
 * second for the reference model (measured in label-private.test.ts).
 */
export function labelPrivateParts(config: ModelConfig, llmOnnx: Uint8Array): LabelPrivateParts {
  const weights: Weights = new Map([...decodeModel(llmOnnx).initializers].filter(([k]) => k.startsWith('llm.')));
  const forward = llmAnswerLogitsGraph(config, weights);
  const missing = forward.params.filter((p) => !weights.has(p));
  if (missing.length > 0)
    throw new Error(`llm.onnx lacks the weights ${missing.join(', ')}: it does not match the model config`);
  const backward = vjp(forward.graph, { of: 'answer_logits', wrt: ['inputs_embeds'] });
  return {
    answerLogits: encodeModel(forward.graph, { docString: 'FedNano llm-host: logits at answer positions' }),
    answerLogitsVjp: encodeModel(backward.graph, {
      docString: 'FedNano llm-host: gradient of <answer_logits_grad, answer_logits> w.r.t. inputs_embeds',
    }),
  };
}
