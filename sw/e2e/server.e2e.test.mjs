// The browser SDK against a real `aviso serve` (API and sender) and the project's mock push
// service (`aviso-mock-push`, HTTPS on loopback): the demo page served by aviso subscribes through
// the soft prompt, the server stores the subscription, a notification to it goes out through the
// delivery engine, the mock decrypts it with the subscriber's private key, and that very
// plaintext is handed to the service worker, which shows it and reports back, so that the
// notification's `shown` and `clicked` counters move on the server.
//
// Only the browser's side of the push service is stood in for: headless Chromium cannot reach
// its own push service offline, so `PushManager.prototype.subscribe`/`getSubscription` answer with
// a subscription whose endpoint is the mock and whose P-256 key the test made, and the decrypted
// push is handed to the worker through DevTools (`ServiceWorker.deliverPushMessage`). Everything
// else (widget, worker, server, store, engine, encryption, VAPID) is real.
//
// Needs the binaries: `cargo build --bin aviso --bin aviso-mock-push` at the repository root
// (or AVISO_BIN / AVISO_MOCK_PUSH_BIN).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createECDH, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch } from './browser.mjs';
import { until } from './wait.mjs';
import { startProcess } from './aviso.mjs';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const AVISO_BIN = process.env.AVISO_BIN || join(REPO, 'target', 'debug', 'aviso');
const MOCK_PUSH_BIN = process.env.AVISO_MOCK_PUSH_BIN || join(REPO, 'target', 'debug', 'aviso-mock-push');
/** The subscriber's id at the mock: its endpoint is `<mock>/push/e2e`. */
const SUBSCRIBER = 'e2e';
/** The subscription the browser renews it into (`pushsubscriptionchange`). */
const RENEWED = 'e2e-renewed';

/**
 * The mock push service on a free loopback port, decrypting what is sent to `SUBSCRIBER` with
 * `keys` and keeping the plaintext (`GET /messages/{id}`).
 */
async function startMockPush(dir, keys, renewedKeys) {
  const keysFile = join(dir, 'keys.jsonl');
  const caFile = join(dir, 'ca.pem');
  writeFileSync(keysFile, `${JSON.stringify({ id: SUBSCRIBER, ...keys })}\n${JSON.stringify({ id: RENEWED, ...renewedKeys })}\n`);
  const mock = await startProcess(
    MOCK_PUSH_BIN,
    ['--listen', '127.0.0.1:0', '--ca-out', caFile, '--verify-keys', keysFile, '--record-details'],
    {},
    ['origin'],
    (line, found) => {
      const listening = /^listening: (https:\/\/127\.0\.0\.1:\d+)\s*$/.exec(line);
      if (listening) found.origin = listening[1];
    },
  );
  return { ...mock, caFile, ca: readFileSync(caFile) };
}

/**
 * `aviso serve` (API and sender) on a free loopback port with a fresh data dir, trusting the
 * mock's CA; reads what it prints on a first start: the default app's id and API key, and the
 * address it listens on.
 */
async function startAviso(dir, caFile, pushOrigin) {
  const dataDir = join(dir, 'data');
  return startProcess(
    AVISO_BIN,
    ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir],
    {
      AVISO_SDK_DIR: join(REPO, 'sw'),
      // The mock's host and port: an extra push host is allowed on its own port only.
      AVISO_ALLOWED_PUSH_HOSTS: new URL(pushOrigin).host,
      AVISO_EXTRA_CA_CERTS: caFile,
      AVISO_PUBLIC_RATE_LIMIT: '100000',
      AVISO_ROLE: 'all',
    },
    ['origin', 'app_id', 'api_key'],
    (line, found) => {
      const field = /^\s*(app_id|api_key):\s+(\S+)\s*$/.exec(line);
      if (field) found[field[1]] = field[2];
      const listening = /^listening: (http:\/\/127\.0\.0\.1:\d+)\s*$/.exec(line);
      if (listening) found.origin = listening[1];
    },
  );
}

/** What the mock accepted for `subscriber`: `[{ttl, urgency, topic, plaintext}]`. */
function mockMessages(subscriber = SUBSCRIBER) {
  return new Promise((resolve, reject) => {
    const request = httpsGet(`${mockPush.origin}/messages/${subscriber}`, { ca: mockPush.ca, timeout: 10_000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => { body += chunk; });
      response.on('end', () => {
        if (response.statusCode !== 200) return reject(new Error(`GET /messages answered ${response.statusCode}: ${body}`));
        try {
          resolve(JSON.parse(body));
        } catch (error) {
          reject(error);
        }
      });
    });
    request.on('timeout', () => request.destroy(new Error('GET /messages timed out')));
    request.on('error', reject);
  });
}

/** The server's private API (`Authorization: Bearer <api key>`): `{status, body}`. */
async function privateApi(method, path, body) {
  const response = await fetch(`${aviso.origin}${path}`, {
    method,
    headers: { Authorization: `Bearer ${aviso.api_key}`, ...(body && { 'Content-Type': 'application/json' }) },
    body: body && JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: response.status, body: json };
}

/**
 * Runs in the page before its scripts: the Push API answers with `fake` (endpoint and keys made
 * by the test) instead of asking a push service, which headless Chromium does not have.
 */
function fakePushManager(fake) {
  const decode = (text) => Uint8Array.from(atob(text.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0)).buffer;
  let current = null;
  window.__avisoFakeSubscribeCalls = 0;
  PushManager.prototype.subscribe = async function subscribe(options = {}) {
    window.__avisoFakeSubscribeCalls += 1;
    const key = options.applicationServerKey;
    const applicationServerKey = typeof key === 'string' ? decode(key) : key && new Uint8Array(key).slice().buffer;
    current = {
      endpoint: fake.endpoint,
      expirationTime: null,
      options: { userVisibleOnly: Boolean(options.userVisibleOnly), applicationServerKey },
      getKey: (name) => (name === 'p256dh' || name === 'auth' ? decode(fake.keys[name]) : null),
      toJSON: () => ({ endpoint: fake.endpoint, expirationTime: null, keys: { ...fake.keys } }),
      unsubscribe: async () => {
        current = null;
        return true;
      },
    };
    return current;
  };
  PushManager.prototype.getSubscription = async function getSubscription() {
    return current;
  };
}

/** Shared between the steps: each test builds on the one before. */
const state = {};
let workDir;
let mockPush;
let aviso;
let browser;
let tab;
let cdp;
const registrations = [];
/** What DevTools said about the worker: shown when a wait fails. */
const workerLog = [];
const pageLog = [];

before(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'aviso-e2e-server-'));
  const makeKeys = () => {
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    const made = { p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') };
    assert.equal(Buffer.from(made.p256dh, 'base64url').length, 65);
    // The scalar as 32 bytes, as the mock's keys file wants it (Node may drop leading zeros).
    const privateKey = Buffer.concat([Buffer.alloc(32), ecdh.getPrivateKey()]).subarray(-32).toString('base64url');
    return { keys: made, privateKey };
  };
  const first = makeKeys();
  const renewed = makeKeys();
  const { keys } = first;
  state.keys = keys;
  state.renewedKeys = renewed.keys;
  mockPush = await startMockPush(workDir, { private_key: first.privateKey, ...keys }, { private_key: renewed.privateKey, ...renewed.keys });
  aviso = await startAviso(workDir, mockPush.caFile, mockPush.origin);
  // Chromium's own notification center rather than the desktop's (D-Bus): fewer runs in which a
  // notification that had been shown and reported was missing from getNotifications().
  browser = await launch({ args: ['--disable-features=NativeNotifications,SystemNotifications'] });
  await browser.context.addInitScript(fakePushManager, { endpoint: `${mockPush.origin}/push/${SUBSCRIBER}`, keys });
  tab = await browser.context.newPage();
  tab.on('console', (message) => pageLog.push(`${message.type()}: ${message.text()}`));
  tab.on('pageerror', (error) => pageLog.push(`pageerror: ${error.message}`));
  cdp = await browser.context.newCDPSession(tab);
  cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations: updated }) => registrations.push(...updated));
  cdp.on('ServiceWorker.workerVersionUpdated', ({ versions }) => workerLog.push(...versions.map((v) => `${v.versionId}:${v.status}/${v.runningStatus}`)));
  cdp.on('ServiceWorker.workerErrorReported', ({ errorMessage }) => workerLog.push(`error: ${errorMessage.errorMessage}`));
  await cdp.send('ServiceWorker.enable');
});

after(async () => {
  await browser?.close();
  await aviso?.stop();
  await mockPush?.stop();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});


test('the demo page served by aviso subscribes through the soft prompt, and the server stores it', async () => {
  const { origin, app_id: appId } = aviso;
  await tab.goto(`${origin}/?app=${encodeURIComponent(appId)}`);
  await until(() => tab.evaluate(() => document.getElementById('support').textContent !== 'checking…'), 'the demo page to start the widget', {
    observe: () => pageLog,
  });
  assert.equal(await tab.locator('#support').textContent(), 'supported');
  assert.equal(await tab.locator('.aviso').count(), 0, 'no soft prompt before an interaction');

  // The widget waits for an interaction (its default). Permission is granted only now: with it
  // granted up front, the widget would subscribe quietly without showing the prompt at all.
  await tab.click('h1');
  const dialog = tab.getByRole('dialog');
  await dialog.waitFor({ timeout: 10_000 });
  await browser.context.grantPermissions(['notifications'], { origin });

  const subscribed = tab.waitForResponse(
    (response) => response.url() === `${origin}/v1/apps/${encodeURIComponent(appId)}/subscriptions` && response.request().method() === 'POST',
    { timeout: 20_000 },
  );
  await dialog.getByRole('button', { name: 'Allow' }).click();
  const response = await subscribed;
  const sent = response.request().postDataJSON();
  assert.equal(sent.subscription.endpoint, `${mockPush.origin}/push/${SUBSCRIBER}`, 'the widget sent the browser\'s subscription');
  assert.equal(Buffer.from(sent.subscription.keys.p256dh, 'base64url').length, 65);
  assert.equal(Buffer.from(sent.subscription.keys.auth, 'base64url').length, 16);
  assert.equal(response.status(), 201, `POST /subscriptions answered ${response.status()}: ${await response.text()}`);
  const { subscription_id: subscriptionId } = await response.json();
  assert.match(subscriptionId, /^[0-9a-f]{16}$/);
  assert.equal(await tab.evaluate(() => window.__avisoFakeSubscribeCalls), 1);
  await until(async () => (await tab.locator('#subscribed').textContent()) === 'yes', 'the demo page to say "Subscribed: yes"', {
    observe: () => pageLog,
  });

  const created = await privateApi('POST', '/v1/notifications', {
    audience: { subscription_ids: [subscriptionId] },
    content: {
      title: 'Your cart misses you',
      body: 'Complete your order within the hour',
      url: `${origin}/?from=push`,
      tag: 'cart',
      actions: [{ action: 'open', title: 'Open cart' }],
      data: { cart: 42 },
    },
  });
  assert.equal(created.status, 201, `POST /v1/notifications answered ${created.status}: ${JSON.stringify(created.body)}`);
  assert.equal(created.body.counters?.targeted, 1, `the stored subscription is targeted: ${JSON.stringify(created.body.counters)}`);
  Object.assign(state, { subscriptionId, notification: created.body });
});

/** The notification's counters on the server once `ready(counters)` holds, polled for 20 s at most. */
async function countersWhen(ready, what) {
  let last;
  return until(async () => {
    const answer = await privateApi('GET', `/v1/notifications/${state.notification.id}`);
    assert.equal(answer.status, 200, `GET /v1/notifications/{id} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    last = answer.body.counters;
    return ready(last) && last;
  }, what, { observe: () => ({ counters: last, worker: workerLog }) });
}

function shownNotifications() {
  return tab.evaluate(async () => {
    const registration = await navigator.serviceWorker.getRegistration('/sdk/');
    const shown = registration ? await registration.getNotifications() : [];
    return shown.map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data, actions: n.actions.map((a) => a.action) }));
  });
}

test('the push the server sent reaches the worker, is shown, and "shown" reaches the server', async (t) => {
  if (!state.notification) return t.skip('needs the subscription of the test before');
  const { origin } = aviso;
  // The delivery engine encrypts and signs the notification for the stored subscription and
  // sends it to the mock, which verifies the VAPID header and decrypts it with the private key
  // the browser side holds; the server counts it delivered on the mock's 201.
  const [message] = await until(async () => {
    const messages = await mockMessages();
    return messages.length > 0 && messages;
  }, 'the mock push service to receive the notification', { observe: () => ({ aviso: aviso.output.slice(-20), mock: mockPush.output.slice(-20) }) });
  assert.equal(typeof message.plaintext, 'string', `the mock decrypted the push: ${JSON.stringify(message)}`);
  const delivered = await countersWhen((c) => c.delivered >= 1, 'the server to count the push as delivered');
  assert.equal(delivered.delivered, 1);
  assert.equal(delivered.sent, 1);

  const scope = `${origin}/sdk/`;
  const registration = await until(() => registrations.find((r) => r.scopeURL === scope && !r.isDeleted), `the worker's registration at ${scope}`, {
    observe: () => ({ registrations, worker: workerLog }),
  });
  // Read the notifications once before the push, not only after: when the first read raced the
  // display of the new notification, Chromium left it out of getNotifications() (about half the
  // runs without this, though the notification had been shown and reported).
  assert.deepEqual(await shownNotifications(), [], 'no notification before the push');
  await cdp.send('ServiceWorker.deliverPushMessage', { origin, registrationId: registration.registrationId, data: message.plaintext });

  // The worker reports "shown" once showNotification has resolved: read the notifications only
  // then, since a read racing the display sometimes left the new one out of getNotifications().
  const counters = await countersWhen((c) => c.shown >= 1, 'the server to count the notification as shown');
  assert.equal(counters.shown, 1);
  const [shown] = await until(async () => {
    const all = await shownNotifications();
    return all.length > 0 && all;
  }, 'the notification to show', { observe: () => workerLog });
  assert.equal(shown.title, 'Your cart misses you');
  assert.equal(shown.body, 'Complete your order within the hour');
  assert.equal(shown.tag, 'cart');
  assert.deepEqual(shown.actions, ['open']);
  assert.equal(shown.data.aviso.n, state.notification.id);
  assert.equal(shown.data.aviso.s, state.subscriptionId);
  assert.match(shown.data.aviso.t, /^[A-Za-z0-9_-]{22}$/, 'the receipt token the worker sent back');
  assert.equal(shown.data.url, `${origin}/?from=push`);
  state.shown = true;
});

test('a click on the notification reaches the server as "clicked"', async (t) => {
  if (!state.shown) return t.skip('needs the notification of the test before');
  // Headless Chromium has no notification UI to click and DevTools no command for it: the
  // worker's own notificationclick handler runs on an event dispatched inside the worker, for
  // the notification the browser shows. The report it sends is real.
  const scriptPrefix = `${aviso.origin}/sdk/aviso-sw.js`;
  const worker = await until(() => browser.context.serviceWorkers().find((w) => w.url().startsWith(scriptPrefix)), 'the service worker', {
    observe: () => browser.context.serviceWorkers().map((w) => w.url()),
  });
  const dispatched = await worker.evaluate(async () => {
    const [notification] = await self.registration.getNotifications();
    if (!notification) return 'no notification to click';
    self.dispatchEvent(new NotificationEvent('notificationclick', { notification, action: '' }));
    return 'dispatched';
  });
  assert.equal(dispatched, 'dispatched');

  const counters = await countersWhen((c) => c.clicked >= 1, 'the server to count the click');
  assert.equal(counters.clicked, 1);
  assert.equal(counters.shown, 1);
  await until(async () => (await shownNotifications()).length === 0, 'the clicked notification to close', {
    observe: shownNotifications,
  });
});

test('after pushsubscriptionchange the profile lists the renewed subscription with its tags, and a push to the person reaches it', async (t) => {
  if (!state.subscriptionId) return t.skip('needs the subscription of the first test');
  const { origin } = aviso;
  const oldEndpoint = `${mockPush.origin}/push/${SUBSCRIBER}`;
  const newEndpoint = `${mockPush.origin}/push/${RENEWED}`;
  // The person logs in (the CRM links the browser) and the site tags it.
  const linked = await privateApi('POST', '/v1/profiles/ana/subscriptions', { subscription_id: state.subscriptionId });
  assert.equal(linked.status, 204, JSON.stringify(linked.body));
  const tagged = await fetch(`${origin}/v1/apps/${encodeURIComponent(aviso.app_id)}/subscriptions/tags`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ endpoint: oldEndpoint, auth: state.keys.auth, tags: { plan: 'pro' } }),
  });
  assert.equal(tagged.status, 204);

  // The browser replaces the subscription. Headless Chromium never fires the event itself (it
  // has no push service): it is dispatched inside the worker with the old subscription, as
  // Firefox gives it, and the browser's new one. The worker's handler and request are real.
  const scriptPrefix = `${origin}/sdk/aviso-sw.js`;
  const worker = await until(() => browser.context.serviceWorkers().find((w) => w.url().startsWith(scriptPrefix)), 'the service worker', {
    observe: () => browser.context.serviceWorkers().map((w) => w.url()),
  });
  const renewal = tab.waitForResponse(
    (response) => response.url() === `${origin}/v1/apps/${encodeURIComponent(aviso.app_id)}/subscriptions` && response.request().method() === 'POST',
    { timeout: 20_000 },
  ).catch(() => null);
  const dispatched = await worker.evaluate(({ oldEndpoint, oldKeys, newEndpoint, newKeys }) => {
    const fake = (endpoint, keys) => ({ endpoint, expirationTime: null, options: {}, toJSON: () => ({ endpoint, expirationTime: null, keys }) });
    const event = new ExtendableEvent('pushsubscriptionchange');
    Object.defineProperty(event, 'oldSubscription', { value: fake(oldEndpoint, oldKeys) });
    Object.defineProperty(event, 'newSubscription', { value: fake(newEndpoint, newKeys) });
    self.dispatchEvent(event);
    return 'dispatched';
  }, { oldEndpoint, oldKeys: state.keys, newEndpoint, newKeys: state.renewedKeys });
  assert.equal(dispatched, 'dispatched');
  // (A worker's own fetch may not show up among the page's responses: the profile says.)
  await renewal;

  let profile;
  await until(async () => {
    profile = await privateApi('GET', '/v1/profiles/ana');
    const listed = profile.body.subscriptions || [];
    return listed.length === 1 && listed[0].id !== state.subscriptionId && listed;
  }, 'the profile to list the renewed subscription', { observe: () => ({ profile: profile && profile.body, worker: workerLog, aviso: aviso.output.slice(-10) }) });
  const [listed] = profile.body.subscriptions;
  assert.deepEqual(listed.tags, { plan: 'pro' }, 'the tags moved over');
  assert.match(listed.id, /^[0-9a-f]{16}$/);

  const created = await privateApi('POST', '/v1/notifications', {
    audience: { external_ids: ['ana'] },
    content: { title: 'Your order shipped', body: 'It arrives tomorrow' },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const [message] = await until(async () => {
    const messages = await mockMessages(RENEWED);
    return messages.length > 0 && messages;
  }, 'the renewed subscription to receive the push', { observe: () => ({ aviso: aviso.output.slice(-20), mock: mockPush.output.slice(-20) }) });
  const payload = JSON.parse(message.plaintext);
  assert.equal(payload.notification.title, 'Your order shipped');
  assert.equal(payload.notification.data.aviso.s, listed.id, 'addressed to the renewed subscription');
  const old = await mockMessages(SUBSCRIBER);
  assert.equal(old.filter((m) => m.plaintext.includes('Your order shipped')).length, 0, 'nothing went to the old endpoint');
});
