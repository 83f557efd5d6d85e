//! What this browser can do about push, from facts the widget reads off `navigator` and `window`:
//! supported, unsupported (and why, for `console.info`), or iOS/iPadOS Safari outside an installed
//! web app, where push exists only after "Add to Home Screen".

/** Web push reached iOS and iPadOS in 16.4, for web apps added to the home screen. */
const IOS_PUSH_SINCE = [16, 4];

/**
 * @param {object} browser `navigator` (or what a test makes of it): userAgent, maxTouchPoints,
 *   standalone (iOS), serviceWorker
 * @param {object} page `window` (or a test's): isSecureContext, PushManager, Notification, matchMedia
 * @returns {{kind: "supported"} | {kind: "ios-install"} | {kind: "unsupported", reason: string}}
 */
export function detectPlatform(browser, page) {
  if (!page.isSecureContext) return { kind: 'unsupported', reason: 'push needs https (or http://localhost)' };
  const ios = iosVersion(browser.userAgent, browser.maxTouchPoints);
  if (ios) {
    if (ios.version && compare(ios.version, IOS_PUSH_SINCE) < 0) {
      return { kind: 'unsupported', reason: `iOS ${ios.version.join('.')} has no web push (16.4 has)` };
    }
    // Installed on the home screen: navigator.standalone on iOS, the display mode elsewhere.
    if (!browser.standalone && !page.matchMedia('(display-mode: standalone)').matches) return { kind: 'ios-install' };
  }
  const missing = [
    'serviceWorker' in browser || 'service workers',
    'PushManager' in page || 'the Push API',
    'Notification' in page || 'notifications',
  ].filter((item) => item !== true);
  if (missing.length) return { kind: 'unsupported', reason: `this browser has no ${missing.join(', ')}` };
  return { kind: 'supported' };
}

/**
 * `{version: [major, minor] | null}` on iPhone, iPod and iPad (iPadOS asks for desktop pages and
 * says "Macintosh", but a Mac has no touch screen), null elsewhere.
 */
export function iosVersion(userAgent, maxTouchPoints = 0) {
  const ua = String(userAgent || '');
  const mobile = /\b(iPhone|iPod|iPad)\b/.test(ua);
  if (!mobile && !(/\bMacintosh\b/.test(ua) && maxTouchPoints > 1)) return null;
  const os = / OS (\d+)_(\d+)/.exec(ua);
  // iPadOS's desktop user agent has no "OS x_y", but Safari's own version follows the OS's.
  const safari = !os && /\bVersion\/(\d+)\.(\d+)/.exec(ua);
  const match = os || safari;
  return { version: match ? [Number(match[1]), Number(match[2])] : null };
}

function compare(a, b) {
  return a[0] - b[0] || a[1] - b[1];
}
