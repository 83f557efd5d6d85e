// Which browsers get the prompt, the iOS home-screen hint, or a console note explaining why not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { detectPlatform, iosVersion } from '../src/platform.js';

const UA = {
  chrome: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  iphone17: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1',
  iphone15: 'Mozilla/5.0 (iPhone; CPU iPhone OS 15_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.6 Mobile/15E148 Safari/604.1',
  iphone164: 'Mozilla/5.0 (iPhone; CPU iPhone OS 16_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.4 Mobile/15E148 Safari/604.1',
  // iPadOS asks for desktop pages: it looks like a Mac, with a touch screen.
  ipadDesktop: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15',
  ipadDesktopOld: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.4 Safari/605.1.15',
  macSafari: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15',
};

/**
 * A browser as detectPlatform sees it: `navigator` and `window` stand-ins built from flags
 * (the APIs are present or absent as properties, as in real browsers).
 */
function browser({ userAgent, maxTouchPoints = 0, standalone, displayStandalone = false, secureContext = true, serviceWorker = true, pushManager = true, notification = true }) {
  const navigator = { userAgent, maxTouchPoints, ...(standalone !== undefined && { standalone }), ...(serviceWorker && { serviceWorker: {} }) };
  const window = {
    isSecureContext: secureContext,
    matchMedia: (query) => ({ matches: query === '(display-mode: standalone)' && displayStandalone }),
    ...(pushManager && { PushManager() {} }),
    ...(notification && { Notification() {} }),
  };
  return [navigator, window];
}
const detect = (flags) => detectPlatform(...browser(flags));
const full = {};

test('a desktop browser with the APIs is supported', () => {
  assert.deepEqual(detect({ ...full, userAgent: UA.chrome }), { kind: 'supported' });
  assert.deepEqual(detect({ ...full, userAgent: UA.macSafari }), { kind: 'supported' });
});

test('iPhone Safari in a tab gets the home-screen hint even without the Push API there', () => {
  const tab = { ...full, userAgent: UA.iphone17, maxTouchPoints: 5, pushManager: false, notification: false };
  assert.deepEqual(detect(tab), { kind: 'ios-install' });
  assert.deepEqual(detect({ ...tab, userAgent: UA.iphone164 }), { kind: 'ios-install' });
});

test('an installed iOS web app is supported (navigator.standalone or the display mode)', () => {
  assert.deepEqual(detect({ ...full, userAgent: UA.iphone17, maxTouchPoints: 5, standalone: true }), { kind: 'supported' });
  assert.deepEqual(detect({ ...full, userAgent: UA.ipadDesktop, maxTouchPoints: 5, displayStandalone: true }), { kind: 'supported' });
  assert.deepEqual(detect({ ...full, userAgent: UA.iphone17, maxTouchPoints: 5, standalone: false }), { kind: 'ios-install' });
});

test('an iPad asking for desktop pages is told apart from a Mac by its touch screen', () => {
  assert.deepEqual(detect({ ...full, userAgent: UA.ipadDesktop, maxTouchPoints: 5 }), { kind: 'ios-install' });
  assert.deepEqual(detect({ ...full, userAgent: UA.ipadDesktop, maxTouchPoints: 0 }), { kind: 'supported' });
  assert.deepEqual(iosVersion(UA.ipadDesktop, 5), { version: [17, 2] });
  assert.equal(iosVersion(UA.macSafari, 0), null);
});

test('iOS before 16.4 is unsupported, with the reason, even installed', () => {
  const old = detect({ ...full, userAgent: UA.iphone15, maxTouchPoints: 5, standalone: true });
  assert.equal(old.kind, 'unsupported');
  assert.match(old.reason, /15\.6.*16\.4/);
  assert.equal(detect({ ...full, userAgent: UA.ipadDesktopOld, maxTouchPoints: 5 }).kind, 'unsupported');
});

test('an insecure page is unsupported, and says https is needed', () => {
  const insecure = detect({ ...full, userAgent: UA.chrome, secureContext: false });
  assert.equal(insecure.kind, 'unsupported');
  assert.match(insecure.reason, /https/);
  assert.equal(detect({ ...full, userAgent: UA.iphone17, secureContext: false }).kind, 'unsupported');
});

test('missing APIs are named in the reason', () => {
  const none = detect({ ...full, userAgent: UA.chrome, pushManager: false, notification: false });
  assert.equal(none.kind, 'unsupported');
  assert.match(none.reason, /Push API/);
  assert.match(none.reason, /notifications/);
  assert.doesNotMatch(none.reason, /service workers/);
});

test('iosVersion reads iPhone versions and ignores other systems', () => {
  assert.deepEqual(iosVersion(UA.iphone17), { version: [17, 1] });
  assert.equal(iosVersion(UA.chrome), null);
  assert.equal(iosVersion(undefined), null);
});
