// Bundles and minifies the console (console/src → console/dist: console.js and console.css),
// served by `aviso serve` at /console/ beside the page and icon that are written by hand in
// console/dist/ (index.html, icon.svg: nothing to build, so they are kept only there).
// Committed like dist/, so reproducible.
// `--outdir DIR` writes elsewhere (the test that checks console/dist is up to date uses it).
import { build } from 'esbuild';
import { mkdir, readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

const root = new URL('..', import.meta.url).pathname;
const { values } = parseArgs({ options: { outdir: { type: 'string', default: `${root}console/dist` } } });
const { version } = JSON.parse(await readFile(`${root}package.json`, 'utf8'));

const common = {
  bundle: true,
  minify: true,
  // The console is for the people running the site: current browsers only.
  target: ['chrome110', 'firefox110', 'safari16', 'edge110'],
  legalComments: 'none',
  logLevel: 'warning',
  absWorkingDir: root,
  banner: { js: `/* Aviso console ${version} */`, css: `/* Aviso console ${version} */` },
};

await mkdir(values.outdir, { recursive: true });
await Promise.all([
  build({ ...common, entryPoints: ['console/src/main.js'], format: 'iife', outfile: `${values.outdir}/console.js` }),
  build({ ...common, entryPoints: ['console/console.css'], outfile: `${values.outdir}/console.css` }),
]);
console.log(`built console.js and console.css into ${values.outdir}`);
