// The widget in headless Chromium: when the soft prompt shows, in which language, what a "no"
// does, what "Allow" does, and what iOS Safari and insecure pages get instead.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './browser.mjs';
import { startServer } from './server.mjs';
import { until } from './wait.mjs';

let server;
before(async () => {
  server = await startServer();
});
after(() => server.close());

const page = (options) => `${server.origin}/page.html?options=${encodeURIComponent(JSON.stringify(options))}`;

async function open(context, url) {
  const tab = await context.newPage();
  await tab.goto(url);
  assert.equal(await tab.evaluate(() => window.initialized), 'ok');
  return tab;
}

test('the soft prompt waits for page views, an interaction and the seconds, in French', async () => {
  const browser = await launch({ locale: 'fr-FR' });
  try {
    const url = page({ pageViews: 2, seconds: 1 });
    const first = await open(browser.context, url);
    await first.click('h1');
    assert.equal(await first.locator('.aviso').count(), 0, 'no prompt on the first page view');
    await first.close();

    const second = await open(browser.context, url);
    assert.equal(await second.locator('.aviso').count(), 0, 'no prompt before an interaction');
    await second.click('h1');
    const dialog = second.getByRole('dialog', { name: 'Restez informé' });
    await dialog.waitFor({ timeout: 10_000 });
    assert.ok(await dialog.getByRole('button', { name: 'Autoriser' }).isVisible());
    await dialog.getByRole('button', { name: 'Plus tard' }).click();
    assert.equal(await second.locator('.aviso').count(), 0, 'a "no" removes the prompt');
    assert.ok(await second.evaluate(() => Number(localStorage.getItem('aviso:declined')) > 0));

    await second.reload();
    await second.click('h1');
    assert.equal(await second.locator('.aviso').count(), 0, 'no prompt within the cool-down');
  } finally {
    await browser.close();
  }
});

test('the bell opens the card; Escape is a "no"', async () => {
  const browser = await launch();
  try {
    const tab = await open(browser.context, page({ style: 'bell', afterInteraction: false }));
    const bell = tab.getByRole('button', { name: 'Turn on notifications' });
    await bell.waitFor();
    assert.equal(await bell.getAttribute('aria-expanded'), 'false');
    assert.equal(await tab.getByRole('dialog').count(), 0);
    await bell.click();
    assert.equal(await bell.getAttribute('aria-expanded'), 'true');
    const dialog = tab.getByRole('dialog', { name: 'Stay in the loop' });
    assert.ok(await dialog.isVisible());
    await tab.keyboard.press('Escape');
    assert.equal(await tab.locator('.aviso').count(), 0);
    assert.ok(await tab.evaluate(() => localStorage.getItem('aviso:declined')));
    // The site may still ask explicitly (its own button): the prompt returns, its CSS is not added twice.
    await tab.evaluate(() => Aviso.prompt());
    await bell.waitFor();
    assert.equal(await tab.evaluate(() => document.querySelectorAll('#aviso-css').length), 1);
  } finally {
    await browser.close();
  }
});

test('"Allow" asks the browser, registers the worker and subscribes with the app\'s key', async () => {
  const browser = await launch();
  try {
    const tab = await open(browser.context, page({}));
    await tab.click('h1');
    const dialog = tab.getByRole('dialog');
    await dialog.waitFor();
    // Headless Chromium cannot show its permission prompt: answer it before the click.
    await browser.context.grantPermissions(['notifications'], { origin: server.origin });
    await dialog.getByRole('button', { name: 'Allow' }).click();
    await until(() => server.calls.some((call) => call.path === '/vapid-public-key'), 'the VAPID key request');
    const registration = await until(() => tab.evaluate(async () => {
      const found = await navigator.serviceWorker.getRegistration('/sdk/');
      return found && found.active && { scope: found.scope, script: found.active.scriptURL };
    }), 'the active service worker');
    assert.equal(registration.scope, `${server.origin}/sdk/`);
    const script = new URL(registration.script);
    assert.equal(script.pathname, '/sdk/aviso-sw.js');
    assert.equal(script.searchParams.get('server'), server.origin);
    assert.equal(script.searchParams.get('app'), 'demo');
    // Headless Chromium has no push service to subscribe to (it needs Google's servers), so the
    // subscription itself and the POST /subscriptions that follows it are the server tests' part.
  } finally {
    await browser.close();
  }
});

test('iPhone Safari in a tab gets the home-screen hint, not a permission prompt', async () => {
  const browser = await launch({
    userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
    locale: 'de-DE',
  });
  try {
    const keyRequests = server.calls.filter((call) => call.path === '/vapid-public-key').length;
    const tab = await open(browser.context, page({}));
    await tab.click('h1');
    const dialog = tab.getByRole('dialog', { name: 'Benachrichtigungen auf diesem Gerät erhalten' });
    await dialog.waitFor();
    assert.match(await dialog.textContent(), /Zum Home-Bildschirm/);
    assert.deepEqual(await dialog.getByRole('button').allTextContents(), ['Verstanden']);
    await dialog.getByRole('button').click();
    assert.equal(await tab.locator('.aviso').count(), 0);
    assert.equal(server.calls.filter((call) => call.path === '/vapid-public-key').length, keyRequests, 'no subscription attempt');
  } finally {
    await browser.close();
  }
});

test('where push cannot work (an insecure page) nothing shows and the console says why', async () => {
  const browser = await launch({ args: ['--host-resolver-rules=MAP insecure.test 127.0.0.1'] });
  try {
    const tab = await browser.context.newPage();
    const messages = [];
    tab.on('console', (message) => messages.push(`${message.type()}: ${message.text()}`));
    await tab.goto(page({ afterInteraction: false }).replace('127.0.0.1', 'insecure.test'));
    assert.equal(await tab.evaluate(() => window.initialized), 'ok');
    await tab.click('h1');
    assert.equal(await tab.locator('.aviso').count(), 0);
    assert.equal(await tab.evaluate(() => Aviso.isSubscribed()), false);
    assert.ok(messages.some((text) => /^info: Aviso: push notifications are off on this page: push needs https/.test(text)), messages.join('\n'));
  } finally {
    await browser.close();
  }
});
