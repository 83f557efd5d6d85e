// From a push message to showNotification's arguments, and from a click to the URL to open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clickUrl, notificationFromPayload, notificationFromProposed, pickWindow, safeUrl } from '../src/payload.js';

const context = { origin: 'https://shop.example', defaultTitle: 'shop.example' };
const parse = (value) => notificationFromPayload(typeof value === 'string' ? value : JSON.stringify(value), context);

const CART = {
  web_push: 8030,
  notification: {
    title: 'Your cart misses you',
    body: 'Complete your order within the hour',
    navigate: 'https://shop.example/cart',
    icon: 'https://shop.example/i.png',
    image: 'https://shop.example/big.png',
    badge: 'https://shop.example/b.png',
    tag: 'cart',
    require_interaction: true,
    actions: [{ action: 'open', title: 'Open cart', navigate: 'https://shop.example/cart?from=push' }],
    data: { aviso: { n: 'n-1', s: '00000000000000a1', t: 'tok-a1' }, data: { any: 'json' } },
    mutable: true,
  },
};
/** CART with other tracking ids (`aviso`) in its notification's data. */
const withAviso = (aviso) => ({ ...CART, notification: { ...CART.notification, data: { ...CART.notification.data, aviso } } });
const AVISO = CART.notification.data.aviso;

test('a Declarative Web Push message becomes the notification it describes', () => {
  const { title, options, tracking } = parse(CART);
  assert.equal(title, 'Your cart misses you');
  assert.deepEqual(options, {
    body: 'Complete your order within the hour',
    icon: 'https://shop.example/i.png',
    image: 'https://shop.example/big.png',
    badge: 'https://shop.example/b.png',
    tag: 'cart',
    requireInteraction: true,
    actions: [{ action: 'open', title: 'Open cart' }],
    data: {
      url: 'https://shop.example/cart',
      actionUrls: { open: 'https://shop.example/cart?from=push' },
      aviso: { n: 'n-1', s: '00000000000000a1', t: 'tok-a1' },
      data: { any: 'json' },
    },
  });
  assert.deepEqual(tracking, { n: 'n-1', s: '00000000000000a1', t: 'tok-a1' });
});

test('the server\'s own payload template parses (shape of src/notify/payload.rs)', () => {
  const fromServer = '{"notification":{"data":{"aviso":{"n":"0193","s":"00000000000000ff","t":"Fj3kQ0Zx9aB7cD1eF2gH3i"}},"mutable":true,"navigate":"/","title":"Hi"},"web_push":8030}';
  const { title, options, tracking } = notificationFromPayload(fromServer, context);
  assert.equal(title, 'Hi');
  assert.equal(options.body, '');
  assert.equal(options.data.url, 'https://shop.example/');
  assert.equal(options.data.data, undefined, 'no data of the app\'s own');
  assert.deepEqual(tracking, { n: '0193', s: '00000000000000ff', t: 'Fj3kQ0Zx9aB7cD1eF2gH3i' });
});

test('a payload of an earlier server, its ids at the top level, is still reported', () => {
  const earlier = '{"aviso":{"n":"0193","s":"00000000000000ff","t":"Fj3kQ0Zx9aB7cD1eF2gH3i"},"notification":{"navigate":"/","title":"Hi","data":{"sku":1}},"web_push":8030}';
  const { options, tracking } = notificationFromPayload(earlier, context);
  assert.deepEqual(tracking, { n: '0193', s: '00000000000000ff', t: 'Fj3kQ0Zx9aB7cD1eF2gH3i' });
  assert.deepEqual(options.data.data, { sku: 1 }, 'data without Aviso\'s ids is the app\'s as it is');
});

/** A `Notification` as Safari hands it over (`proposedNotification`): DOM attribute names and defaults, frozen arrays. */
function proposed(message) {
  const n = message.notification;
  return {
    title: n.title, body: n.body ?? '', navigate: n.navigate, icon: n.icon ?? '', image: n.image ?? '', badge: n.badge ?? '',
    tag: n.tag ?? '', lang: '', dir: 'auto', requireInteraction: n.require_interaction === true, silent: null, renotify: false,
    timestamp: 1764748800000, vibrate: Object.freeze([]), data: structuredClone(n.data),
    actions: Object.freeze((n.actions ?? []).map((a) => Object.freeze({ action: a.action, title: a.title, icon: '', navigate: a.navigate }))),
  };
}

test('the notification Safari proposes for a mutable message is shown as the message would be', () => {
  const fromMessage = parse(CART);
  const fromProposed = notificationFromProposed(proposed(CART), 3, context);
  assert.equal(fromProposed.title, fromMessage.title);
  assert.deepEqual(fromProposed.tracking, AVISO);
  assert.deepEqual({ ...fromProposed.options, timestamp: undefined, dir: undefined }, { ...fromMessage.options, timestamp: undefined, dir: undefined });
  assert.equal(fromProposed.appBadge, 3);
  assert.equal(notificationFromProposed(proposed(CART), null, context).appBadge, undefined);
});

test('a proposed notification without a title, or none at all, still shows', () => {
  const untitled = notificationFromProposed({ body: 'x', data: null, actions: [] }, undefined, context);
  assert.deepEqual([untitled.title, untitled.options.body, untitled.tracking], ['shop.example', 'x', undefined]);
  const none = notificationFromProposed(null, undefined, context);
  assert.equal(none.title, 'shop.example');
});

test('plain text is shown as the body under the default title', () => {
  const { title, options, tracking } = notificationFromPayload('Flash sale: 20% off until midnight', context);
  assert.equal(title, 'shop.example');
  assert.equal(options.body, 'Flash sale: 20% off until midnight');
  assert.equal(options.data.url, 'https://shop.example/');
  assert.equal(tracking, undefined);
});

test('malformed JSON is shown as text rather than dropped', () => {
  const broken = '{"web_push": 8030, "notification": {"title": "Oops"';
  const { title, options } = notificationFromPayload(broken, context);
  assert.equal(title, 'shop.example');
  assert.equal(options.body, broken);
});

test('JSON that is not a notification is shown as text; a JSON string as its value', () => {
  assert.equal(parse('[1,2,3]').options.body, '[1,2,3]');
  assert.equal(parse('42').options.body, '42');
  assert.equal(parse('{"web_push":8030}').options.body, '{"web_push":8030}');
  assert.equal(parse('"hello"').options.body, 'hello');
});

test('an empty push still shows something (browsers demand a visible notification)', () => {
  for (const empty of [undefined, null, '']) {
    const { title, options } = notificationFromPayload(empty, context);
    assert.equal(title, 'shop.example');
    assert.equal(options.body, '');
  }
});

test('a bare {title, body} object, as other senders send, is accepted', () => {
  const { title, options } = parse({ title: 'Hello', body: 'World', url: '/news' });
  assert.equal(title, 'Hello');
  assert.equal(options.body, 'World');
  assert.equal(options.data.url, 'https://shop.example/news');
});

test('more than two actions are trimmed to the first two valid ones', () => {
  const message = structuredClone(CART);
  message.notification.actions = [
    { action: 'a', title: 'A', navigate: '/a' },
    { action: '', title: 'no id' },
    { action: 'b', title: 'B' },
    { action: 'c', title: 'C', navigate: '/c' },
  ];
  const { options } = parse(message);
  assert.deepEqual(options.actions.map((action) => action.action), ['a', 'b']);
  assert.deepEqual(options.data.actionUrls, { a: 'https://shop.example/a', b: 'https://shop.example/cart' });
});

test('unsafe or broken URLs are dropped; relative ones resolve against the site', () => {
  const message = structuredClone(CART);
  Object.assign(message.notification, {
    navigate: 'javascript:alert(1)',
    icon: 'data:image/png;base64,AAAA',
    image: '/img/big.png',
    badge: 'http://[broken',
  });
  const { options } = parse(message);
  assert.equal(options.data.url, 'https://shop.example/');
  assert.equal(options.icon, undefined);
  assert.equal(options.image, 'https://shop.example/img/big.png');
  assert.equal(options.badge, undefined);
  assert.equal(safeUrl('https://other.example/x', context.origin), 'https://other.example/x');
});

test('optional members are checked: renotify needs a tag, app_badge a count', () => {
  const message = structuredClone(CART);
  Object.assign(message.notification, { renotify: true, silent: true, dir: 'rtl', lang: 'ar', timestamp: 1700000000000, vibrate: [100, 50], app_badge: '3' });
  const parsed = parse(message);
  assert.equal(parsed.options.renotify, true);
  assert.equal(parsed.options.silent, true);
  assert.equal(parsed.options.dir, 'rtl');
  assert.equal(parsed.options.lang, 'ar');
  assert.equal(parsed.options.timestamp, 1700000000000);
  assert.deepEqual(parsed.options.vibrate, [100, 50]);
  assert.equal(parsed.appBadge, 3);

  delete message.notification.tag;
  Object.assign(message.notification, { dir: 'sideways', vibrate: ['x'], app_badge: 'many', require_interaction: 'yes' });
  const loose = parse(message);
  assert.equal(loose.options.renotify, undefined);
  assert.equal(loose.options.dir, undefined);
  assert.equal(loose.options.vibrate, undefined);
  assert.equal(loose.options.requireInteraction, undefined);
  assert.equal(loose.appBadge, undefined);
});

test('a title that is not a string falls back to the default title', () => {
  const { title, options } = parse({ web_push: 8030, notification: { title: 7, body: 'Seven' } });
  assert.equal(title, 'shop.example');
  assert.equal(options.body, 'Seven');
});

test('tracking ids are kept only when the ids and the receipt token are strings', () => {
  assert.equal(parse(withAviso({ n: 'n-1' })).tracking, undefined);
  assert.equal(parse(withAviso({ n: 'n-1', s: '00000000000000a1' })).tracking, undefined);
  assert.equal(parse(withAviso({ n: 1, s: 2 })).options.data.aviso, undefined);
});

test('an A/B variant\'s index is kept when it is a whole number', () => {
  assert.equal(parse(withAviso({ ...AVISO, v: 2 })).tracking.v, 2);
  assert.equal(parse(withAviso({ ...AVISO, v: 0 })).tracking.v, 0);
  for (const v of ['1', 1.5, -1, null]) assert.equal('v' in parse(withAviso({ ...AVISO, v })).tracking, false);
});

test('a click opens the action\'s URL, else the notification\'s, else the site', () => {
  const { options } = parse(CART);
  const origin = context.origin;
  assert.equal(clickUrl(options.data, 'open', origin), 'https://shop.example/cart?from=push');
  assert.equal(clickUrl(options.data, '', origin), 'https://shop.example/cart');
  assert.equal(clickUrl(options.data, 'unknown', origin), 'https://shop.example/cart');
  assert.equal(clickUrl(undefined, '', origin), 'https://shop.example/');
  assert.equal(clickUrl({ url: 'javascript:alert(1)' }, '', origin), 'https://shop.example/');
  assert.equal(clickUrl({ url: '/x', actionUrls: { a: 'javascript:void 0' } }, 'a', origin), 'https://shop.example/x');
});

test('the window to focus shows the same URL, fragment aside', () => {
  const open = ['https://shop.example/', 'https://shop.example/cart#top', 'https://shop.example/cart?x=1'];
  assert.equal(pickWindow(open, 'https://shop.example/cart'), 1);
  assert.equal(pickWindow(open, 'https://shop.example/checkout'), -1);
  assert.equal(pickWindow([], 'https://shop.example/'), -1);
});
