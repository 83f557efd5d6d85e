// The soft prompt's texts: language choice and site overrides.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BUILT_IN, pickLanguage, resolveTexts } from '../src/i18n.js';

test('every built-in language has every text, and they differ from English', () => {
  const keys = Object.keys(BUILT_IN.en).sort();
  assert.deepEqual(Object.keys(BUILT_IN).sort(), ['de', 'en', 'es', 'fr', 'pt']);
  for (const [language, texts] of Object.entries(BUILT_IN)) {
    assert.deepEqual(Object.keys(texts).sort(), keys, language);
    for (const key of keys) assert.ok(texts[key].trim(), `${language}.${key} is empty`);
    if (language !== 'en') assert.notEqual(texts.allow + texts.later, BUILT_IN.en.allow + BUILT_IN.en.later, language);
  }
});

test('picks the first preferred language that has texts, by primary subtag', () => {
  assert.equal(pickLanguage(['pt-BR', 'en-US']), 'pt');
  assert.equal(pickLanguage(['it-IT', 'de-AT', 'fr']), 'de');
  assert.equal(pickLanguage(['FR_ca']), 'fr');
  assert.equal(pickLanguage(['es-419']), 'es');
});

test('falls back to English', () => {
  assert.equal(pickLanguage(['it', 'ja']), 'en');
  assert.equal(pickLanguage([]), 'en');
  assert.equal(pickLanguage(undefined), 'en');
});

test('plain overrides apply to every language, per-language ones win for theirs', () => {
  const overrides = { title: 'News from Shop', fr: { title: 'Les nouvelles de Shop', allow: 'Oui' } };
  const en = resolveTexts('en', overrides);
  assert.equal(en.title, 'News from Shop');
  assert.equal(en.allow, BUILT_IN.en.allow);
  const fr = resolveTexts('fr', overrides);
  assert.equal(fr.title, 'Les nouvelles de Shop');
  assert.equal(fr.allow, 'Oui');
  assert.equal(fr.later, BUILT_IN.fr.later);
});

test('a language without built-in texts starts from English and takes its overrides', () => {
  const it = resolveTexts('it', { it: { allow: 'Consenti' } });
  assert.equal(it.allow, 'Consenti');
  assert.equal(it.later, BUILT_IN.en.later);
});

test('ignores overrides that are not strings, and does not change the built-ins', () => {
  const texts = resolveTexts('de', { title: 42, body: null });
  assert.equal(texts.title, BUILT_IN.de.title);
  texts.title = 'changed';
  assert.notEqual(BUILT_IN.de.title, 'changed');
});
