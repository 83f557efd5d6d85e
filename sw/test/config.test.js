// Aviso.init options and the service worker's configuration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { apiBase, parseWidgetConfig, parseWorkerConfig, serviceWorkerUrl } from '../src/config.js';

test('fills in defaults and strips the trailing slash of the server', () => {
  const config = parseWidgetConfig({ server: 'https://push.example.com/', appId: ' shop ' });
  assert.equal(config.server, 'https://push.example.com');
  assert.equal(config.appId, 'shop');
  assert.equal(config.pageViews, 1);
  assert.equal(config.cooldownDays, 30);
  assert.equal(config.cooldownMs, 30 * 864e5);
  assert.equal(config.style, 'banner');
  assert.equal(config.serviceWorkerPath, '/sdk/aviso-sw.js');
});

test('keeps a path prefix in the server URL', () => {
  assert.equal(parseWidgetConfig({ server: 'https://example.com/aviso/', appId: 'a' }).server, 'https://example.com/aviso');
});

test('the server defaults to where the widget was loaded from', () => {
  assert.equal(parseWidgetConfig({ appId: 'shop' }, 'https://push.example.com').server, 'https://push.example.com');
  assert.equal(parseWidgetConfig({ appId: 'shop', server: 'https://other.example' }, 'https://push.example.com').server, 'https://other.example');
});

test('rejects a missing or wrong server, naming the option', () => {
  assert.throws(() => parseWidgetConfig({ appId: 'shop' }), /"server" must be the URL of your Aviso server/);
  assert.throws(() => parseWidgetConfig({ appId: 'shop', server: 'push.example.com' }), /"server".*got "push\.example\.com"/);
  assert.throws(() => parseWidgetConfig({ appId: 'shop', server: 'ftp://push.example.com' }), /"server"/);
});

test('rejects a missing app id and a missing options object', () => {
  assert.throws(() => parseWidgetConfig({ server: 'https://push.example.com' }), /"appId"/);
  assert.throws(() => parseWidgetConfig({ server: 'https://push.example.com', appId: '  ' }), /"appId"/);
  assert.throws(() => parseWidgetConfig(undefined, 'https://push.example.com'), /"appId"/);
});

test('rejects negative or non-numeric conditions, and unknown styles', () => {
  const base = { server: 'https://push.example.com', appId: 'shop' };
  assert.throws(() => parseWidgetConfig({ ...base, seconds: -1 }), /"seconds" must be a number, 0 or more \(got -1\)/);
  assert.throws(() => parseWidgetConfig({ ...base, pageViews: '3' }), /"pageViews"/);
  assert.throws(() => parseWidgetConfig({ ...base, cooldownDays: NaN }), /"cooldownDays"/);
  assert.throws(() => parseWidgetConfig({ ...base, style: 'modal' }), /"style" must be "banner" or "bell"/);
  assert.equal(parseWidgetConfig({ ...base, cooldownDays: Infinity }).cooldownMs, Infinity);
});

test('apiBase escapes the app id', () => {
  assert.equal(apiBase('https://push.example.com', 'shop'), 'https://push.example.com/v1/apps/shop');
  assert.equal(apiBase('https://push.example.com/', 'a b/c'), 'https://push.example.com/v1/apps/a%20b%2Fc');
});

test('the registered worker URL carries server and app in its query', () => {
  const config = parseWidgetConfig({ server: 'https://push.example.com', appId: 'shop' });
  const href = serviceWorkerUrl(config, 'https://shop.example/products/42');
  const url = new URL(href);
  assert.equal(url.origin + url.pathname, 'https://shop.example/sdk/aviso-sw.js');
  assert.equal(url.searchParams.get('server'), 'https://push.example.com');
  assert.equal(url.searchParams.get('app'), 'shop');
  // ... and the worker reads back what the widget wrote.
  assert.deepEqual(parseWorkerConfig(href), { server: 'https://push.example.com', appId: 'shop' });
});

test('the worker prefers self.AVISO_CONFIG over its URL, and accepts "app" or "appId"', () => {
  const href = 'https://shop.example/sw.js?server=https://a.example&app=one';
  assert.deepEqual(parseWorkerConfig(href, { server: 'https://b.example', appId: 'two' }), { server: 'https://b.example', appId: 'two' });
  assert.deepEqual(parseWorkerConfig(href, { app: 'three' }), { server: 'https://a.example', appId: 'three' });
  assert.deepEqual(parseWorkerConfig('https://shop.example/sw.js', { server: 'https://b.example/', app: 'x' }), { server: 'https://b.example', appId: 'x' });
});

test('a worker without a usable configuration gets null', () => {
  assert.equal(parseWorkerConfig('https://shop.example/sw.js'), null);
  assert.equal(parseWorkerConfig('https://shop.example/sw.js?server=https://a.example'), null);
  assert.equal(parseWorkerConfig('https://shop.example/sw.js?server=nonsense&app=x'), null);
  assert.equal(parseWorkerConfig('https://shop.example/sw.js', 'not an object'), null);
});
