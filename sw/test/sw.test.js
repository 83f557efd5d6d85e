// The service worker's event handling, run from its bundled source in a sandbox that plays the
// browser's part (registration, clients, fetch). Checks what the pure tests cannot: that every
// report and fetch is inside event.waitUntil, that a failing report never keeps a notification
// from showing, and that a renewed subscription reaches the server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import vm from 'node:vm';
import { buildSync } from 'esbuild';

const bundled = buildSync({
  entryPoints: [new URL('../src/sw.js', import.meta.url).pathname],
  bundle: true,
  format: 'iife',
  write: false,
}).outputFiles[0].text;

const SERVER = 'https://push.example.com';
const WORKER = `https://shop.example/sdk/aviso-sw.js?server=${encodeURIComponent(SERVER)}&app=shop`;

/** Loads the worker into a fresh sandbox; `answer(url, init)` plays the server. */
function worker({ href = WORKER, config, answer = () => new Response(null, { status: 204 }), windows = [], current = null, storage = null } = {}) {
  const calls = { fetch: [], shown: [], opened: [], focused: [], subscribed: [], log: [] };
  const listeners = {};
  const sandbox = {
    URL, Response, JSON, Promise, Uint8Array, atob, Intl, Number, Array, Object, String,
    console: { warn: (...args) => calls.log.push(args.join(' ')), info() {} },
    navigator: { language: 'pt-BR' },
    location: new URL(href),
    AVISO_CONFIG: config,
    // Cache Storage, when the test gives a Map to hold it.
    caches: storage && {
      open: async () => ({
        put: async (key, response) => { storage.set(key, await response.text()); },
        match: async (key) => (storage.has(key) ? new Response(storage.get(key)) : undefined),
      }),
    },
    addEventListener: (type, listener) => { listeners[type] = listener; },
    fetch: async (url, init) => {
      const call = { url, method: init?.method ?? 'GET', body: init?.body && JSON.parse(init.body) };
      calls.fetch.push(call);
      // Answers a little later, so that work left outside waitUntil shows up as unanswered.
      await new Promise((resolve) => setTimeout(resolve, 5));
      call.answered = true;
      return answer(url, init);
    },
    registration: {
      showNotification: async (title, options) => { calls.shown.push({ title, options, fetchesBefore: calls.fetch.length }); },
      pushManager: {
        getSubscription: async () => current,
        subscribe: async (options) => {
          calls.subscribed.push(options);
          return subscription('https://fcm.googleapis.com/fcm/send/new');
        },
      },
    },
    clients: {
      matchAll: async () => windows.map((url) => ({ url, focus: async () => calls.focused.push(url) })),
      openWindow: async (url) => calls.opened.push(url),
    },
  };
  sandbox.self = sandbox;
  vm.runInNewContext(bundled, sandbox);
  /** Dispatches an event and waits for everything it handed to waitUntil. */
  async function dispatch(type, event) {
    const pending = [];
    listeners[type]({ ...event, waitUntil: (promise) => pending.push(promise) });
    assert.equal(pending.length, 1, `${type} must call waitUntil once`);
    await pending[0];
    const unanswered = calls.fetch.filter((call) => !call.answered).map((call) => call.url);
    assert.deepEqual(unanswered, [], `${type}: every fetch finishes inside waitUntil`);
  }
  return { calls, dispatch, listeners };
}

function subscription(endpoint, applicationServerKey) {
  const json = { endpoint, expirationTime: null, keys: { p256dh: 'BPub', auth: `auth-of-${endpoint.slice(-3)}` } };
  return { endpoint, options: { applicationServerKey }, toJSON: () => json };
}

const pushData = (value) => ({ data: { text: () => (typeof value === 'string' ? value : JSON.stringify(value)) } });
const CART = {
  web_push: 8030,
  notification: {
    title: 'Cart', body: 'Come back', navigate: 'https://shop.example/cart', actions: [{ action: 'pay', title: 'Pay', navigate: '/pay' }],
    data: { aviso: { n: 'n-1', s: '00000000000000a1', t: 'tok-a1' } }, mutable: true,
  },
};
const AVISO = CART.notification.data.aviso;
/** What Safari hands the worker for CART: a `Notification`, in the DOM's attribute names. */
const proposedCart = () => ({
  title: 'Cart', body: 'Come back', navigate: 'https://shop.example/cart', icon: '', tag: '', dir: 'auto', requireInteraction: false,
  timestamp: 1764748800000, actions: Object.freeze([{ action: 'pay', title: 'Pay', icon: '', navigate: 'https://shop.example/pay' }]),
  data: { aviso: { ...AVISO } },
});

test('push: shows the notification, then reports "shown" with both ids', async () => {
  const { calls, dispatch } = worker();
  await dispatch('push', pushData(CART));
  assert.equal(calls.shown.length, 1);
  assert.equal(calls.shown[0].title, 'Cart');
  assert.equal(calls.shown[0].fetchesBefore, 0, 'the report waits for the notification');
  assert.deepEqual(calls.fetch, [{
    url: `${SERVER}/v1/apps/shop/events`,
    method: 'POST',
    body: { notification_id: 'n-1', subscription_id: '00000000000000a1', token: 'tok-a1', type: 'shown' },
    answered: true,
  }]);
});

test('push of an A/B variant: the report names the variant its token covers', async () => {
  const { calls, dispatch } = worker();
  await dispatch('push', pushData({ ...CART, notification: { ...CART.notification, data: { aviso: { ...AVISO, v: 1 } } } }));
  assert.deepEqual(calls.fetch.map((call) => call.body), [
    { notification_id: 'n-1', subscription_id: '00000000000000a1', token: 'tok-a1', type: 'shown', variant: 1 },
  ]);
});

test('pushnotification (Safari, a mutable Declarative Web Push): shows the proposed notification itself and reports "shown"', async () => {
  const { calls, dispatch } = worker();
  await dispatch('pushnotification', { proposedNotification: proposedCart(), proposedAppBadge: null });
  assert.equal(calls.shown.length, 1, 'shown by the worker, so that a click reaches notificationclick');
  assert.equal(calls.shown[0].title, 'Cart');
  assert.deepEqual({ ...calls.shown[0].options.data.actionUrls }, { pay: 'https://shop.example/pay' });
  assert.deepEqual(calls.fetch.map((call) => call.body), [
    { notification_id: 'n-1', subscription_id: '00000000000000a1', token: 'tok-a1', type: 'shown' },
  ]);
});

test('push with a notification and no data (the Push API\'s Declarative Web Push) is shown and reported the same', async () => {
  const { calls, dispatch } = worker();
  await dispatch('push', { data: null, notification: proposedCart(), appBadge: null });
  assert.equal(calls.shown[0].title, 'Cart');
  assert.equal(calls.fetch[0].body.type, 'shown');
  assert.equal(calls.fetch[0].body.token, 'tok-a1');
});

test('a click on what Safari proposed reports "clicked" with its action', async () => {
  const { calls, dispatch } = worker();
  await dispatch('pushnotification', { proposedNotification: proposedCart() });
  const options = calls.shown[0].options;
  calls.fetch.length = 0;
  await dispatch('notificationclick', { notification: { data: options.data, close() {} }, action: 'pay' });
  assert.deepEqual(calls.opened, ['https://shop.example/pay']);
  assert.deepEqual(calls.fetch.map((call) => call.body), [
    { notification_id: 'n-1', subscription_id: '00000000000000a1', token: 'tok-a1', type: 'clicked', action: 'pay' },
  ]);
});

test('push: a report that fails (network or server) still shows, and settles the event', async () => {
  for (const answer of [() => Promise.reject(new TypeError('Failed to fetch')), () => new Response('{"detail":"boom"}', { status: 503 })]) {
    const { calls, dispatch } = worker({ answer });
    await dispatch('push', pushData(CART));
    assert.equal(calls.shown.length, 1);
    assert.equal(calls.fetch.length, 1);
    assert.match(calls.log.join('\n'), /could not report "shown"/);
  }
});

test('push: plain text shows as the body under the site\'s name, with nothing to report', async () => {
  const { calls, dispatch } = worker();
  await dispatch('push', pushData('Hello there'));
  assert.deepEqual([calls.shown[0].title, calls.shown[0].options.body], ['shop.example', 'Hello there']);
  assert.equal(calls.fetch.length, 0);
});

test('push: an empty push still shows a notification', async () => {
  const { calls, dispatch } = worker();
  await dispatch('push', { data: null });
  assert.equal(calls.shown.length, 1);
});

test('without a server and app the worker shows but reports nothing', async () => {
  const { calls, dispatch } = worker({ href: 'https://shop.example/sw.js' });
  await dispatch('push', pushData(CART));
  assert.equal(calls.shown.length, 1);
  assert.equal(calls.fetch.length, 0);
});

test('inside a site\'s worker, self.AVISO_CONFIG names the server', async () => {
  const { calls, dispatch } = worker({ href: 'https://shop.example/sw.js', config: { server: 'https://other.example', appId: 'blog' } });
  await dispatch('push', pushData(CART));
  assert.equal(calls.fetch[0].url, 'https://other.example/v1/apps/blog/events');
});

test('click on an action: closes, opens the action\'s URL, reports "clicked" with the action', async () => {
  const { calls, dispatch } = worker();
  await dispatch('push', pushData(CART));
  let closed = false;
  const notification = { data: calls.shown[0].options.data, close: () => { closed = true; } };
  await dispatch('notificationclick', { notification, action: 'pay' });
  assert.ok(closed);
  assert.deepEqual(calls.opened, ['https://shop.example/pay']);
  assert.deepEqual(calls.fetch.at(-1).body, { notification_id: 'n-1', subscription_id: '00000000000000a1', token: 'tok-a1', type: 'clicked', action: 'pay' });
});

test('click on the notification focuses a window already showing its URL', async () => {
  const { calls, dispatch } = worker({ windows: ['https://shop.example/', 'https://shop.example/cart'] });
  await dispatch('push', pushData(CART));
  await dispatch('notificationclick', { notification: { data: calls.shown[0].options.data, close() {} }, action: '' });
  assert.deepEqual(calls.focused, ['https://shop.example/cart']);
  assert.deepEqual(calls.opened, []);
  assert.equal(calls.fetch.at(-1).body.action, undefined);
});

test('a click still opens the page when the report fails', async () => {
  const { calls, dispatch } = worker({ answer: () => Promise.reject(new TypeError('offline')) });
  await dispatch('push', pushData(CART));
  await dispatch('notificationclick', { notification: { data: calls.shown[0].options.data, close() {} }, action: '' });
  assert.deepEqual(calls.opened, ['https://shop.example/cart']);
});

test('close reports "closed"', async () => {
  const { calls, dispatch } = worker();
  await dispatch('push', pushData(CART));
  await dispatch('notificationclose', { notification: { data: calls.shown[0].options.data } });
  assert.equal(calls.fetch.at(-1).body.type, 'closed');
});

test('pushsubscriptionchange: subscribes with the old key, sends the new subscription replacing the old one', async () => {
  const storage = new Map();
  const { calls, dispatch } = worker({ storage });
  const key = new Uint8Array([4, 1, 2, 3]).buffer;
  await dispatch('pushsubscriptionchange', { oldSubscription: subscription('https://fcm.googleapis.com/fcm/send/old', key) });
  assert.equal(calls.subscribed.length, 1);
  assert.equal(calls.subscribed[0].applicationServerKey, key);
  assert.equal(calls.subscribed[0].userVisibleOnly, true);
  assert.deepEqual(calls.fetch.map((call) => call.url), [`${SERVER}/v1/apps/shop/subscriptions`], 'the server deletes the old one itself');
  assert.equal(calls.fetch[0].body.subscription.endpoint, 'https://fcm.googleapis.com/fcm/send/new');
  assert.equal(calls.fetch[0].body.locale, 'pt-BR');
  assert.equal(typeof calls.fetch[0].body.timezone, 'string');
  assert.deepEqual(calls.fetch[0].body.replaces, { endpoint: 'https://fcm.googleapis.com/fcm/send/old', auth: 'auth-of-old' });
  assert.deepEqual(JSON.parse(storage.get('/aviso/subscription')), { endpoint: 'https://fcm.googleapis.com/fcm/send/new', auth: 'auth-of-new' }, 'the new one is kept for the next renewal');
});

test('pushsubscriptionchange without oldSubscription (Chrome, Safari) replaces the one the worker kept at a push', async () => {
  const storage = new Map();
  const kept = subscription('https://fcm.googleapis.com/fcm/send/was');
  const { calls, dispatch } = worker({ storage, current: kept });
  await dispatch('push', pushData('hello'));
  assert.deepEqual(JSON.parse(storage.get('/aviso/subscription')), { endpoint: 'https://fcm.googleapis.com/fcm/send/was', auth: 'auth-of-was' });
  await dispatch('pushsubscriptionchange', { newSubscription: subscription('https://fcm.googleapis.com/fcm/send/now') });
  assert.deepEqual(calls.fetch.at(-1).body.replaces, { endpoint: 'https://fcm.googleapis.com/fcm/send/was', auth: 'auth-of-was' });
  assert.equal(calls.fetch.at(-1).body.subscription.endpoint, 'https://fcm.googleapis.com/fcm/send/now');
});

test('pushsubscriptionchange with nothing known of the old one renews without replaces', async () => {
  const { calls, dispatch } = worker({ storage: new Map() });
  await dispatch('pushsubscriptionchange', { newSubscription: subscription('https://fcm.googleapis.com/fcm/send/now') });
  assert.equal(calls.fetch.at(-1).body.replaces, undefined);
});

test('pushsubscriptionchange without an old key fetches the app\'s VAPID key', async () => {
  const publicKey = Buffer.from([4, 9, 9, 9]).toString('base64url');
  const { calls, dispatch } = worker({
    answer: (url) => (url.endsWith('/vapid-public-key')
      ? new Response(JSON.stringify({ vapid_public_key: publicKey }), { status: 200 })
      : new Response(JSON.stringify({ subscription_id: 'x' }), { status: 201 })),
  });
  await dispatch('pushsubscriptionchange', {});
  assert.equal(calls.fetch[0].url, `${SERVER}/v1/apps/shop/vapid-public-key`);
  assert.deepEqual([...calls.subscribed[0].applicationServerKey], [4, 9, 9, 9]);
  assert.equal(calls.fetch[1].url, `${SERVER}/v1/apps/shop/subscriptions`);
});

test('pushsubscriptionchange with the browser\'s new subscription sends it as is', async () => {
  const { calls, dispatch } = worker();
  await dispatch('pushsubscriptionchange', { newSubscription: subscription('https://updates.push.services.mozilla.com/wpush/v2/abc') });
  assert.equal(calls.subscribed.length, 0);
  assert.equal(calls.fetch[0].body.subscription.endpoint, 'https://updates.push.services.mozilla.com/wpush/v2/abc');
});

test('a server refusing the renewed subscription is logged with its detail, not thrown', async () => {
  const { calls, dispatch } = worker({ answer: () => new Response('{"title":"Forbidden","detail":"origin not allowed"}', { status: 403 }) });
  await dispatch('pushsubscriptionchange', { newSubscription: subscription('https://fcm.googleapis.com/fcm/send/xyz') });
  assert.match(calls.log.join('\n'), /403: origin not allowed/);
});
