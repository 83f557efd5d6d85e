// Bundles and minifies the widget and the service worker into dist/ (served by `aviso serve`
// under /sdk/). The output is committed, so the build must be reproducible: no timestamps.
// `--outdir DIR` writes elsewhere (the test that checks dist/ is up to date uses it).
import { build } from 'esbuild';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

const root = new URL('..', import.meta.url).pathname;
const { values } = parseArgs({ options: { outdir: { type: 'string', default: `${root}dist` } } });
const { version } = JSON.parse(await readFile(`${root}package.json`, 'utf8'));

const common = {
  bundle: true,
  minify: true,
  format: 'iife',
  // Browsers that have the Push API; older ones get a widget that stays quiet.
  target: ['chrome80', 'firefox78', 'safari15', 'edge80'],
  legalComments: 'none',
  logLevel: 'warning',
  absWorkingDir: root,
};

const bundles = [
  { entry: 'src/widget.js', out: 'aviso-widget.js', banner: 'Aviso widget' },
  { entry: 'src/sw.js', out: 'aviso-sw.js', banner: 'Aviso service worker' },
];
await Promise.all(bundles.map(({ entry, out, banner }) => build({
  ...common,
  entryPoints: [entry],
  outfile: `${values.outdir}/${out}`,
  banner: { js: `/* ${banner} ${version} */` },
})));
console.log(`built ${bundles.map((b) => b.out).join(', ')} into ${values.outdir}`);
