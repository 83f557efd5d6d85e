// Prints the minified and gzipped size of each file in dist/ and fails when one outgrows its
// budget: the widget loads on every page of a site, the worker wakes for every push. The console
// (console/dist: its script, styles and page together) has a budget for the whole of it.
import { readdir, readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';

const dist = new URL('../dist/', import.meta.url);
const BUDGETS_GZ = { 'aviso-widget.js': 6 * 1024, 'aviso-sw.js': 3 * 1024 };

const files = (await readdir(dist)).filter((name) => name.endsWith('.js')).sort();
let failed = false;
for (const name of Object.keys(BUDGETS_GZ)) {
  if (!files.includes(name)) {
    console.error(`dist/${name} is missing: run "npm run build" first`);
    failed = true;
  }
}
const kb = (bytes) => `${(bytes / 1024).toFixed(2)} KB`;
for (const name of files) {
  const bytes = await readFile(new URL(name, dist));
  const gz = gzipSync(bytes, { level: 9 }).length;
  const budget = BUDGETS_GZ[name];
  const over = budget !== undefined && gz > budget;
  failed ||= over;
  console.log(`${name.padEnd(18)} ${String(bytes.length).padStart(6)} B minified  ${String(gz).padStart(5)} B gzipped (${kb(gz)})`
    + (budget === undefined ? '' : `  budget ${kb(budget)}${over ? '  OVER BUDGET' : ''}`));
}
const consoleDist = new URL('../console/dist/', import.meta.url);
const CONSOLE_BUDGET_GZ = 80 * 1024;
let consoleGz = 0;
for (const name of ['index.html', 'console.js', 'console.css', 'icon.svg']) {
  let bytes;
  try {
    bytes = await readFile(new URL(name, consoleDist));
  } catch {
    console.error(`console/dist/${name} is missing: run "npm run build" first`);
    failed = true;
    continue;
  }
  const gz = gzipSync(bytes, { level: 9 }).length;
  consoleGz += gz;
  console.log(`console/${name.padEnd(10)} ${String(bytes.length).padStart(6)} B minified  ${String(gz).padStart(5)} B gzipped (${kb(gz)})`);
}
const consoleOver = consoleGz > CONSOLE_BUDGET_GZ;
failed ||= consoleOver;
console.log(`console, whole       ${String(consoleGz).padStart(5)} B gzipped (${kb(consoleGz)})  budget ${kb(CONSOLE_BUDGET_GZ)}${consoleOver ? '  OVER BUDGET' : ''}`);
process.exit(failed ? 1 : 0);
