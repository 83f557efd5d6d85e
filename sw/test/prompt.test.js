// The soft prompt's rules: conditions, never nag after a "no", a denied permission, the iOS
// home-screen case, unsupported browsers, and what happens once permission is granted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseWidgetConfig } from '../src/config.js';
import { decidePrompt } from '../src/prompt.js';

const DAY = 864e5;
const NOW = Date.UTC(2025, 0, 15);

function config(options = {}) {
  return parseWidgetConfig({ server: 'https://push.example.com', appId: 'shop', ...options });
}

/** A visitor who meets the default conditions on a supported browser. */
function visit(overrides = {}) {
  return {
    platform: 'supported',
    permission: 'default',
    subscribed: false,
    pageViews: 1,
    secondsOnSite: 0,
    interacted: true,
    declinedAt: null,
    now: NOW,
    ...overrides,
  };
}

test('prompts once the default conditions hold', () => {
  assert.deepEqual(decidePrompt(visit(), config()), { action: 'prompt', kind: 'push' });
});

test('waits for the first interaction with the page by default', () => {
  assert.deepEqual(decidePrompt(visit({ interacted: false }), config()), { action: 'wait', seconds: 0, interaction: true });
  assert.deepEqual(decidePrompt(visit({ interacted: false }), config({ afterInteraction: false })), { action: 'prompt', kind: 'push' });
});

test('waits for the remaining seconds on site', () => {
  const decision = decidePrompt(visit({ secondsOnSite: 12 }), config({ seconds: 30 }));
  assert.deepEqual(decision, { action: 'wait', seconds: 18, interaction: false });
  assert.deepEqual(decidePrompt(visit({ secondsOnSite: 30 }), config({ seconds: 30 })), { action: 'prompt', kind: 'push' });
});

test('waits for seconds and interaction together', () => {
  const decision = decidePrompt(visit({ secondsOnSite: 5, interacted: false }), config({ seconds: 10 }));
  assert.deepEqual(decision, { action: 'wait', seconds: 5, interaction: true });
});

test('stays quiet on this page until enough page views', () => {
  assert.deepEqual(decidePrompt(visit({ pageViews: 2 }), config({ pageViews: 3 })), { action: 'none', reason: 'page-views' });
  assert.equal(decidePrompt(visit({ pageViews: 3 }), config({ pageViews: 3 })).action, 'prompt');
});

test('never nags within the cool-down after a "no"', () => {
  const cfg = config({ cooldownDays: 14 });
  const justNow = visit({ declinedAt: NOW - 1000 });
  assert.deepEqual(decidePrompt(justNow, cfg), { action: 'none', reason: 'declined' });
  assert.deepEqual(decidePrompt(visit({ declinedAt: NOW - 13.9 * DAY }), cfg), { action: 'none', reason: 'declined' });
  assert.equal(decidePrompt(visit({ declinedAt: NOW - 14 * DAY }), cfg).action, 'prompt');
});

test('a "no" wins over met conditions, and Infinity means never again', () => {
  const cfg = config({ cooldownDays: Infinity });
  const decision = decidePrompt(visit({ declinedAt: NOW - 3650 * DAY, pageViews: 50, secondsOnSite: 1e6 }), cfg);
  assert.deepEqual(decision, { action: 'none', reason: 'declined' });
});

test('a cool-down of 0 days asks again on the next page', () => {
  assert.equal(decidePrompt(visit({ declinedAt: NOW }), config({ cooldownDays: 0 })).action, 'prompt');
});

test('respects a denied permission, even when the site forces the prompt', () => {
  assert.deepEqual(decidePrompt(visit({ permission: 'denied' }), config()), { action: 'none', reason: 'denied' });
  assert.deepEqual(decidePrompt(visit({ permission: 'denied' }), config(), true), { action: 'none', reason: 'denied' });
});

test('a forced prompt skips conditions and the cool-down', () => {
  const early = visit({ pageViews: 1, interacted: false, declinedAt: NOW });
  assert.deepEqual(decidePrompt(early, config({ pageViews: 5, seconds: 60 }), true), { action: 'prompt', kind: 'push' });
});

test('granted permission: subscribe quietly when there is no subscription, else nothing', () => {
  assert.deepEqual(decidePrompt(visit({ permission: 'granted' }), config()), { action: 'subscribe' });
  assert.deepEqual(decidePrompt(visit({ permission: 'granted', subscribed: true }), config()), { action: 'none', reason: 'subscribed' });
});

test('iOS Safari outside a home-screen app gets the install hint, under the same conditions', () => {
  const ios = { platform: 'ios-install', permission: undefined };
  assert.deepEqual(decidePrompt(visit(ios), config()), { action: 'prompt', kind: 'ios-install' });
  assert.deepEqual(decidePrompt(visit({ ...ios, interacted: false }), config()), { action: 'wait', seconds: 0, interaction: true });
  assert.deepEqual(decidePrompt(visit({ ...ios, declinedAt: NOW - DAY }), config()), { action: 'none', reason: 'declined' });
});

test('unsupported browsers never see anything, forced or not', () => {
  assert.deepEqual(decidePrompt(visit({ platform: 'unsupported' }), config()), { action: 'none', reason: 'unsupported' });
  assert.deepEqual(decidePrompt(visit({ platform: 'unsupported' }), config(), true), { action: 'none', reason: 'unsupported' });
});

test('after Aviso.unsubscribe nothing happens by itself, though the permission stays granted', () => {
  assert.deepEqual(decidePrompt(visit({ permission: 'granted', optedOut: true }), config()), { action: 'none', reason: 'unsubscribed' });
  assert.deepEqual(decidePrompt(visit({ optedOut: true }), config()), { action: 'none', reason: 'unsubscribed' });
  // The site's own button (Aviso.prompt) still works.
  assert.deepEqual(decidePrompt(visit({ permission: 'granted', optedOut: true }), config(), true), { action: 'subscribe' });
  assert.deepEqual(decidePrompt(visit({ optedOut: true }), config(), true), { action: 'prompt', kind: 'push' });
});
