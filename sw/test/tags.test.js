// Tags as Aviso.setTags takes them and keeps them until the visitor subscribes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { changesNothing, mergeTags, normalizeTags } from '../src/tags.js';

test('turns numbers and booleans into strings, undefined and null into removals', () => {
  assert.deepEqual(normalizeTags({ plan: 'pro', visits: 3, vip: true, old: null, gone: undefined }),
    { plan: 'pro', visits: '3', vip: 'true', old: null, gone: null });
});

test('rejects what the API cannot store, naming the tag', () => {
  assert.throws(() => normalizeTags(['a']), /needs an object/);
  assert.throws(() => normalizeTags('plan=pro'), /needs an object/);
  assert.throws(() => normalizeTags({ cart: { items: 2 } }), /tag "cart"/);
});

test('merging applies removals and keeps the rest', () => {
  const current = { plan: 'free', city: 'Lisbon' };
  assert.deepEqual(mergeTags(current, { plan: 'pro', city: null, lang: 'pt' }), { plan: 'pro', lang: 'pt' });
  assert.deepEqual(current, { plan: 'free', city: 'Lisbon' });
});

test('knows when changes change nothing', () => {
  const current = { plan: 'pro' };
  assert.equal(changesNothing(current, { plan: 'pro', gone: null }), true);
  assert.equal(changesNothing(current, { plan: 'free' }), false);
  assert.equal(changesNothing(current, { plan: null }), false);
  assert.equal(changesNothing(current, { constructor: null }), true);
});
