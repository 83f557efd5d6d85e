// The live chart's geometry (pure: no DOM): counters sampled over time → SVG path data.

export const SERIES = [
  ['delivered', 'Delivered'],
  ['shown', 'Shown'],
  ['clicked', 'Clicked'],
];

/** A round number ≥ `n` for the top of the axis: 1, 2, 5, 10, 20, 50… */
export function niceMax(n) {
  if (n <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(n));
  return [1, 2, 5, 10].map((m) => m * power).find((m) => m >= n);
}

/**
 * `samples`: `[{t, counters}]` in time order. Returns the top of the y axis and, per series, the
 * path of a step line over a `width` × `height` box (time from the first sample to the last).
 */
export function geometry(samples, width, height) {
  const top = niceMax(Math.max(1, ...samples.flatMap((s) => SERIES.map(([key]) => s.counters[key] || 0))));
  const t0 = samples.length ? samples[0].t : 0;
  const span = samples.length > 1 ? samples[samples.length - 1].t - t0 : 1;
  const x = (t) => ((t - t0) / span) * width;
  const y = (v) => height - (v / top) * height;
  const paths = Object.fromEntries(SERIES.map(([key]) => {
    const points = samples.map((s) => [x(s.t), y(s.counters[key] || 0)]);
    const d = points.map(([px, py], i) => (i === 0 ? `M${px.toFixed(1)},${py.toFixed(1)}` : `H${px.toFixed(1)}V${py.toFixed(1)}`)).join('');
    return [key, d];
  }));
  return { top, span, paths };
}
