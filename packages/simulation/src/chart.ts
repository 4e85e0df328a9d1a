import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { RoundRecord } from './simulate.js';

/** Accuracy per round as an SVG line chart (one line per method), rendered headless by Vega-Lite. */
export async function accuracyChart(
  series: { label: string; rounds: RoundRecord[] }[],
  title: string,
): Promise<string> {
  const values = series.flatMap((s) =>
    s.rounds.map((r) => ({ round: r.round, accuracy: r.accuracy, method: s.label })),
  );
  const spec = vl.compile({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 480,
    height: 280,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'round', type: 'quantitative', title: 'round', axis: { tickMinStep: 1 } },
      y: {
        field: 'accuracy',
        type: 'quantitative',
        title: 'test accuracy',
        scale: { domain: [0, 1] },
        axis: { format: '%' },
      },
      color: { field: 'method', type: 'nominal', title: 'method' },
    },
  }).spec;
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}
