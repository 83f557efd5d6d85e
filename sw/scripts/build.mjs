// Bundles and minifies the widget and the service worker into dist/ (served by `aviso serve`
// under /sdk/). The output is committed, so the build must be reproducible: no timestamps.
import { build } from 'esbuild';
import { readFile } from 'node:fs/promises';

const root = new URL('..', import.meta.url).pathname;
const { version } = JSON.parse(await readFile(`${root}package.json`, 'utf8'));

const common = {
  bundle: true,
  minify: true,
  format: 'iife',
  // Browsers that have the Push API; older ones get a widget that stays quiet.
  target: ['chrome80', 'firefox78', 'safari15', 'edge80'],
  legalComments: 'none',
  logLevel: 'info',
  absWorkingDir: root,
};

await Promise.all([
  build({
    ...common,
    entryPoints: ['src/widget.js'],
    outfile: 'dist/aviso-widget.js',
    banner: { js: `/* Aviso widget ${version} */` },
  }),
  build({
    ...common,
    entryPoints: ['src/sw.js'],
    outfile: 'dist/aviso-sw.js',
    banner: { js: `/* Aviso service worker ${version} */` },
  }),
]);
