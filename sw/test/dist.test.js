// dist/ is committed and served as is: it must be what `npm run build` makes of today's source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;

/** Builds `script` into a fresh folder and fails on any of `names` that `dist` holds otherwise. */
function assertFreshBuild(script, dist, names) {
  const out = mkdtempSync(join(tmpdir(), 'aviso-dist-'));
  try {
    execFileSync(process.execPath, [join(root, script), '--outdir', out], { stdio: 'pipe' });
    for (const name of names) {
      assert.equal(readFileSync(join(root, dist, name), 'utf8'), readFileSync(join(out, name), 'utf8'),
        `${dist}/${name} is stale: run "npm run build" and commit ${dist}/`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

test('console/dist/ holds a fresh build of console/ (its page and icon are hand-written there)', () => {
  assertFreshBuild('scripts/build-console.mjs', 'console/dist', ['console.js', 'console.css']);
});

test('dist/ matches a fresh build of src/', () => {
  assertFreshBuild('scripts/build.mjs', 'dist', ['aviso-widget.js', 'aviso-sw.js']);
});
