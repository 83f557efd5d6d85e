// dist/ is committed and served as is: it must be what `npm run build` makes of today's source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

test('console/dist/ holds a fresh build of console/ (its page and icon are hand-written there)', () => {
  const root = new URL('..', import.meta.url).pathname;
  const out = mkdtempSync(join(tmpdir(), 'aviso-console-dist-'));
  try {
    execFileSync(process.execPath, [join(root, 'scripts/build-console.mjs'), '--outdir', out], { stdio: 'pipe' });
    for (const name of ['console.js', 'console.css']) {
      assert.equal(readFileSync(join(root, 'console/dist', name), 'utf8'), readFileSync(join(out, name), 'utf8'),
        `console/dist/${name} is stale: run "npm run build" and commit console/dist/`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('dist/ matches a fresh build of src/', () => {
  const root = new URL('..', import.meta.url).pathname;
  const out = mkdtempSync(join(tmpdir(), 'aviso-dist-'));
  try {
    execFileSync(process.execPath, [join(root, 'scripts/build.mjs'), '--outdir', out], { stdio: 'pipe' });
    for (const name of ['aviso-widget.js', 'aviso-sw.js']) {
      assert.equal(readFileSync(join(root, 'dist', name), 'utf8'), readFileSync(join(out, name), 'utf8'),
        `dist/${name} is stale: run "npm run build" and commit dist/`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
