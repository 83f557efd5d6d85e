// The console in headless Chromium against a real `aviso serve` (API and sender, embedded
// store) and the project's mock push service: sign in, the overview of subscribers made through
// the public API, a broadcast composed with an image and a button that the mock decrypts for
// every subscriber, the detail page counting it delivered without a reload, a scheduled one
// cancelled, the API's own message next to a field, a segment's reach, a profile looked up and
// erased, the settings changed. axe-core checks every page, light and dark; no CSP violation.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { launch } from './browser.mjs';
import { until } from './wait.mjs';
import { REPO, startServers } from './aviso.mjs';

const SUBSCRIBERS = 3;
const AXE = readFileSync(join(REPO, 'sw', 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

let servers;
let browser;
let page;
const pageLog = [];

before(async () => {
  servers = await startServers(SUBSCRIBERS);
  const [first, second, third] = servers.subscribers;
  await servers.subscribe(first, { locale: 'pt-BR', tags: { plan: 'pro' }, externalId: 'crm-1' });
  await servers.subscribe(second, { locale: 'en-US' });
  await servers.subscribe(third, { locale: 'en-GB', tags: { plan: 'free' } });
  browser = await launch();
  await browser.context.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  page = await browser.context.newPage();
  page.on('console', (message) => pageLog.push(`${message.type()}: ${message.text()}`));
  page.on('pageerror', (error) => pageLog.push(`pageerror: ${error.message}`));
});

after(async () => {
  await browser?.close();
  await servers?.stop();
});

/** axe-core on the page as it is now, in light and dark: no serious or critical violation. */
async function checkAccessibility(what) {
  for (const colorScheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme });
    if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE);
    const violations = await page.evaluate(async () => {
      const result = await window.axe.run(document, { resultTypes: ['violations'] });
      return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
    });
    const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    assert.deepEqual(bad, [], `${what} (${colorScheme}): ${JSON.stringify(bad, null, 1)}`);
  }
  await page.emulateMedia({ colorScheme: 'light' });
}

const state = {};

/** A test that needs the sign-in of the first one: skipped when that failed. */
function testSignedIn(name, body) {
  test(name, (t) => (state.signedIn ? body() : t.skip('needs the sign-in')));
}

/** Goes to the Compose page by its link in the menu. */
async function openCompose() {
  await page.getByRole('link', { name: 'Compose' }).click();
  await page.getByRole('heading', { name: 'Compose', level: 1 }).waitFor();
}

test('sign in: a wrong key gets the API\'s message next to the field, a right one the overview', async () => {
  const { aviso } = servers;
  await page.goto(`${aviso.console}`);
  const key = page.getByLabel('API key');
  await key.waitFor();
  assert.equal(await page.getByRole('navigation').count(), 0, 'no menu before signing in');
  await key.fill('av_not-a-key');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const error = page.locator(`#${await key.getAttribute('id')}-error`);
  await error.waitFor({ state: 'visible', timeout: 10_000 });
  assert.match(await error.textContent(), /missing or invalid API key/);
  assert.equal(await key.getAttribute('aria-invalid'), 'true');
  await checkAccessibility('sign-in');

  await key.fill(aviso.admin_key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor({ timeout: 10_000 });
  assert.equal(await page.getByRole('navigation', { name: 'Console' }).count(), 1);
  assert.equal(await page.evaluate(() => sessionStorage.length), 1, 'the key is kept in sessionStorage');
  assert.equal(await page.evaluate(() => localStorage.length), 0, 'and nowhere else');
  state.signedIn = true;
});

testSignedIn('the overview counts the subscribers made through the public API', async () => {
  await until(async () => (await page.getByTestId('total').textContent().catch(() => '')) === String(SUBSCRIBERS), 'the subscriber total', { observe: () => pageLog });
  const text = await page.locator('main').textContent();
  assert.match(text, /By push service/);
  assert.match(text, /127\.0\.0\.1/, 'the mock push service is named by its host');
  assert.match(text, /pt\s*1 \(33%\)/);
  assert.match(text, /en\s*2 \(67%\)/);
  await checkAccessibility('overview');
});

testSignedIn('a too-long body gets the API\'s message next to the body field', async () => {
  await openCompose();
  await page.getByLabel('Title').fill('Too long');
  await page.getByLabel('Body').fill('x'.repeat(4000));
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith('/v1/notifications') && r.request().method() === 'POST'),
    page.getByRole('button', { name: 'Send' }).click(),
  ]);
  assert.equal(response.status(), 400);
  const problem = await response.json();
  assert.equal(problem.field, 'content');
  const body = page.getByLabel('Body');
  const slot = page.locator('[data-field="content"] > .error');
  await slot.waitFor({ state: 'visible' });
  assert.equal(await slot.textContent(), problem.detail, 'the API\'s own words');
  assert.equal(await body.getAttribute('aria-invalid'), 'true');
  assert.ok(await page.evaluate(() => document.activeElement?.id === document.querySelector('[data-field="content.body"] textarea').id), 'the body has the focus');
  assert.match(page.url(), /#\/compose$/, 'nothing was created');
  await checkAccessibility('compose with an error');
});

testSignedIn('compose a broadcast with an image and a button: every subscriber gets it, the detail page counts it live', async () => {
  const { aviso } = servers;
  await page.reload();
  await page.getByRole('heading', { name: 'Compose', level: 1 }).waitFor();
  const image = `${aviso.origin}/console/icon.svg`;
  await page.getByLabel('Title').fill('Summer sale');
  await page.getByLabel('Body').fill('Everything 20% off until Sunday');
  await page.getByLabel('Image URL').fill(image);
  await page.getByLabel('Opens URL when clicked').fill(`${aviso.origin}/?from=sale`);
  await page.getByRole('group', { name: 'Button 1 (optional)' }).getByLabel('Label').fill('Shop now');
  await page.getByRole('group', { name: 'Button 1 (optional)' }).getByLabel('Opens URL').fill(`${aviso.origin}/?from=button`);
  // The live preview follows the form.
  const preview = page.getByRole('complementary', { name: 'Preview' });
  await until(async () => (await preview.textContent()).includes('Summer sale') && (await preview.textContent()).includes('Shop now'), 'the preview');
  assert.equal(await preview.locator('img.preview-image').getAttribute('src'), image);
  await until(async () => /Estimated reach: 3 subscriptions/.test(await page.locator('.reach').textContent()), 'the reach of everyone', { observe: () => page.locator('.reach').textContent() });
  await checkAccessibility('compose');

  await page.evaluate(() => { window.__sameDocument = true; });
  await page.getByRole('button', { name: 'Send' }).click();
  await page.getByRole('heading', { name: 'Summer sale', level: 1 }).waitFor({ timeout: 10_000 });
  state.id = /#\/n\/([0-9a-f]+)$/.exec(page.url())[1];

  // The mock push service decrypted one message for each subscriber, with the image and button.
  for (const subscriber of servers.subscribers) {
    const [message] = await until(async () => {
      const got = await servers.messages(subscriber);
      return got.length > 0 && got;
    }, `the push to ${subscriber.id}`, { observe: () => servers.aviso.output.slice(-10) });
    const payload = JSON.parse(message.plaintext);
    assert.equal(payload.notification.title, 'Summer sale');
    assert.equal(payload.notification.image, image);
    assert.deepEqual(payload.notification.actions.map((a) => a.title), ['Shop now']);
  }
  // The detail page moves to delivered = 3 by itself: same document, no reload.
  const delivered = page.locator('[data-counter="delivered"] dd');
  await until(async () => (await delivered.textContent()) === String(SUBSCRIBERS), 'delivered = 3 on the page', { observe: () => delivered.textContent() });
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page was not reloaded');
  await until(async () => /Delivered: 3/.test(await page.locator('figcaption').textContent()), 'the chart legend');
  // The chart is the counters sampled every 2 s since the page opened, so a fast send may be
  // whole before the first sample: wait for a second one, then the delivered line ends above 0.
  const line = page.locator('path.series.delivered');
  const d = await until(async () => { const got = await line.getAttribute('d'); return got.includes('V') && got; },
    'a second sample on the chart', { observe: () => line.getAttribute('d') });
  assert.ok(Number(/V([0-9.]+)$/.exec(d)[1]) < 180, `the delivered line ends above zero: ${d}`);
  const server = await servers.api('GET', `/v1/notifications/${state.id}`);
  assert.equal(server.body.counters.delivered, SUBSCRIBERS);
  await checkAccessibility('notification detail');
});

testSignedIn('schedule one for later, then cancel it from its page', async () => {
  await openCompose();
  await page.getByLabel('Title').fill('Next year');
  await page.getByLabel('At a time').check();
  const year = new Date().getFullYear() + 1;
  await page.getByLabel('Send at (your local time)').fill(`${year}-01-15T09:30`);
  await page.getByRole('button', { name: 'Send' }).click();
  await page.getByRole('heading', { name: 'Next year', level: 1 }).waitFor({ timeout: 10_000 });
  const id = /#\/n\/([0-9a-f]+)$/.exec(page.url())[1];
  assert.equal(await page.getByTestId('status').textContent(), 'Scheduled');
  const stored = await servers.api('GET', `/v1/notifications/${id}`);
  assert.equal(stored.body.send_at_ms, new Date(`${year}-01-15T09:30`).getTime(), 'the local time the form showed');
  await page.getByRole('button', { name: 'Cancel this notification' }).click();
  await until(async () => (await page.getByTestId('status').textContent()) === 'Cancelled', 'the status to say Cancelled');
  assert.equal((await servers.api('GET', `/v1/notifications/${id}`)).body.status, 'cancelled');
});

testSignedIn('a segment built visually shows its estimated reach', async () => {
  await openCompose();
  await page.getByLabel('A segment').check();
  const condition = page.getByRole('group', { name: 'Condition 1' });
  await condition.getByLabel('Name').fill('plan');
  await condition.getByLabel('Value').fill('pro');
  await until(async () => /Estimated reach: 1 subscription$/.test(await page.locator('.reach').textContent()), 'the reach of plan = pro', { observe: () => page.locator('.reach').textContent() });
  await condition.getByLabel('Condition').selectOption('exists');
  await until(async () => /Estimated reach: 2 subscriptions/.test(await page.locator('.reach').textContent()), 'the reach of "plan is set"');
  await checkAccessibility('compose with a segment');
});

testSignedIn('the overview lists the notifications with their counters, filtered', async () => {
  await page.getByRole('link', { name: 'Overview' }).click();
  const rows = page.locator('tbody tr');
  await until(async () => (await rows.count()) === 2, 'two notifications listed');
  // Title, status, audience, send time, targeted (a broadcast's, counted as it is read), delivered, shown, clicked, failed.
  const row = async () => {
    const cells = await rows.nth(1).locator('td').allTextContents();
    return [...cells.slice(0, 3), ...cells.slice(4)];
  };
  // The list is read once when the page opens: open it again until the broadcast completed.
  await until(async () => {
    if ((await row())[1] === 'Sent') return true;
    await page.getByRole('link', { name: 'Overview' }).click();
    return false;
  }, 'the broadcast to be completed', { observe: row });
  assert.deepEqual(await row(), ['Summer sale', 'Sent', 'Everyone', '3', '3', '0', '0', '0']);
  await page.getByLabel('Status').selectOption('cancelled');
  await until(async () => (await rows.count()) === 1 && /Next year/.test(await rows.first().textContent()), 'only the cancelled one');
});

testSignedIn('profiles: look up by external id, see the subscription, erase', async () => {
  await page.getByRole('link', { name: 'Profiles' }).click();
  await page.getByLabel('External id').fill('nobody');
  await page.getByRole('button', { name: 'Look up' }).click();
  await until(async () => /profile `nobody` does not exist/.test(await page.locator('[data-field="external_id"] .error').textContent()), 'the API\'s not-found message');
  await page.getByLabel('External id').fill('crm-1');
  await page.getByRole('button', { name: 'Look up' }).click();
  await page.getByRole('heading', { name: 'crm-1' }).waitFor();
  assert.match(await page.locator('main').textContent(), /Subscriptions \(1\)/);
  await checkAccessibility('profile');
  await page.getByRole('button', { name: 'Erase this person…' }).click();
  await page.getByRole('button', { name: 'Yes, erase crm-1 and 1 subscription' }).click();
  await until(async () => /Erased crm-1: 1 subscription/.test(await page.locator('main').textContent()), 'the erase to be confirmed');
  assert.equal((await servers.api('GET', '/v1/profiles/crm-1')).status, 404);
});

testSignedIn('settings: the VAPID key, the snippet, origins saved at once, a bad origin refused next to the box', async () => {
  const { aviso } = servers;
  await page.getByRole('link', { name: 'Settings' }).click();
  await page.getByRole('heading', { name: 'Settings', level: 1 }).waitFor();
  const vapid = (await servers.api('GET', `/v1/apps/${aviso.app_id}/vapid-public-key`, undefined, null)).body;
  assert.equal(await page.getByTestId('vapid').textContent(), vapid.vapid_public_key);
  assert.match(await page.getByLabel('Widget snippet').textContent(), new RegExp(`appId: '${aviso.app_id}'`));
  const origins = page.getByLabel('Allowed origins (one per line)');
  await origins.fill(`${aviso.origin}\nnot an origin`);
  await page.getByRole('button', { name: 'Save' }).click();
  const error = page.locator('[data-field="origins"] .error');
  await until(async () => /origins\[1\]: .*not a URL/.test(await error.textContent()), 'the API\'s message for origins[1]', { observe: () => error.textContent() });
  await origins.fill(`${aviso.origin}\nhttps://shop.example/`);
  await page.getByRole('button', { name: 'Save' }).click();
  await until(async () => (await page.getByRole('status').filter({ hasText: 'Saved.' }).count()) === 1, 'Saved.');
  assert.equal(await origins.inputValue(), `${aviso.origin}\nhttps://shop.example`);
  const cors = await fetch(`${aviso.origin}/v1/apps/${aviso.app_id}/vapid-public-key`, { headers: { Origin: 'https://shop.example' } });
  assert.equal(cors.status, 200, 'the new origin holds at once');
  await checkAccessibility('settings');
});

testSignedIn('keyboard only: sign in with Enter, move between pages with Tab and Enter', async () => {
  const tab = await browser.context.newPage();
  try {
    await tab.goto(servers.aviso.console);
    await tab.getByLabel('API key').waitFor();
    assert.equal(await tab.evaluate(() => document.activeElement?.type), 'password', 'the key box has the focus');
    await tab.keyboard.type(servers.aviso.api_key);
    await tab.keyboard.press('Enter');
    await tab.getByRole('heading', { name: 'Overview', level: 1 }).waitFor({ timeout: 10_000 });
    let reached = false;
    for (let i = 0; i < 30 && !reached; i += 1) {
      await tab.keyboard.press('Tab');
      reached = await tab.evaluate(() => document.activeElement?.textContent === 'Compose');
    }
    assert.ok(reached, 'Tab reaches the Compose link');
    await tab.keyboard.press('Enter');
    await tab.getByRole('heading', { name: 'Compose', level: 1 }).waitFor();
    assert.equal(await tab.evaluate(() => document.activeElement?.textContent), 'Compose', 'the new page starts at its heading');
  } finally {
    await tab.close();
  }
});

testSignedIn('a read key: the console shows, and sending shows the API\'s refusal where it happened', async () => {
  const { aviso } = servers;
  const issued = await servers.api('POST', `/v1/admin/apps/${aviso.app_id}/keys`, { scope: 'read' }, aviso.admin_key);
  assert.equal(issued.status, 201, JSON.stringify(issued.body));
  const tab = await browser.context.newPage();
  try {
    await tab.goto(aviso.console);
    await tab.getByLabel('API key').fill(issued.body.api_key);
    await tab.getByRole('button', { name: 'Sign in' }).click();
    await tab.getByRole('heading', { name: 'Overview', level: 1 }).waitFor({ timeout: 10_000 });
    await tab.getByRole('link', { name: 'Compose' }).click();
    await tab.getByLabel('Title').fill('Not allowed');
    await tab.getByRole('button', { name: 'Send' }).click();
    const general = tab.locator('form.compose > .compose-grid [data-field="*"] .error');
    await general.waitFor({ state: 'visible', timeout: 10_000 });
    assert.match(await general.textContent(), /this API key has the `read` scope; this request needs `send`/);
    await tab.getByRole('link', { name: 'Settings' }).click();
    await tab.getByRole('heading', { name: 'Settings', level: 1 }).waitFor();
    assert.equal(await tab.getByLabel('Allowed origins (one per line)').getAttribute('readonly'), '', 'read only');
    assert.equal(await tab.getByRole('button', { name: 'Save' }).count(), 0);
  } finally {
    await tab.close();
  }
});

testSignedIn('the demo page at / uses the default app without being told', async () => {
  const tab = await browser.context.newPage();
  try {
    await tab.goto(`${servers.aviso.origin}/`);
    await until(async () => (await tab.locator('#app').textContent()) === servers.aviso.app_id, 'the default app on the demo page', {
      observe: () => tab.locator('#message').textContent(),
    });
  } finally {
    await tab.close();
  }
});

testSignedIn('no Content Security Policy violation on any page', async () => {
  const response = await fetch(`${servers.aviso.console}`);
  assert.match(response.headers.get('content-security-policy'), /script-src 'self'/);
  assert.deepEqual(await page.evaluate(() => window.__cspViolations), []);
  assert.deepEqual(pageLog.filter((line) => line.startsWith('pageerror')), []);
});
