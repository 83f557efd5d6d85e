//! Configuration of the widget (`Aviso.init` options) and of the service worker (its script
//! URL's query or `self.AVISO_CONFIG`): defaults, checks with messages a site owner can act on,
//! and the public API's base URL (docs/PUBLIC-API.md).

const DAY_MS = 864e5;

/** The widget's defaults; every one can be overridden in `Aviso.init`. */
export const WIDGET_DEFAULTS = {
  /** Page views (this one included) before the soft prompt may show. */
  pageViews: 1,
  /** Seconds since the visit's first page before the soft prompt may show. */
  seconds: 0,
  /** Wait for the visitor to click, tap or type on the page before showing the soft prompt. */
  afterInteraction: true,
  /** Days to stay quiet after a "no"; `Infinity` never asks again. */
  cooldownDays: 30,
  /** `"banner"` (a card at the bottom) or `"bell"` (a button that opens the card). */
  style: 'banner',
  /** Show the soft prompt by itself; `false` leaves it to `Aviso.prompt()` / `Aviso.subscribe()`. */
  autoPrompt: true,
  /** The worker's path on the site's origin (browsers run only same-origin workers). */
  serviceWorkerPath: '/sdk/aviso-sw.js',
  // Optional, without defaults: `serviceWorkerScope` (the worker's scope; its folder when unset),
  // `language` (one of i18n.js's; chosen from the browser's when unset), `texts` (overrides, see
  // i18n.js), `vapidPublicKey` (base64url; fetched from the server when unset), `onChange`
  // (called with true once the visitor is subscribed, false once unsubscribed), `onError` (called
  // with what failed in work the widget did on its own, such as subscribing after "Allow").
};

/** The public API's base for one app: `{server}/v1/apps/{appId}`. */
export function apiBase(server, appId) {
  return `${server.replace(/\/+$/, '')}/v1/apps/${encodeURIComponent(appId)}`;
}

/** The server's URL without a trailing slash, or null when it is no http(s) URL. */
export function normalizeServer(server) {
  try {
    const url = new URL(server);
    if (url.protocol === 'https:' || url.protocol === 'http:') return url.origin + url.pathname.replace(/\/+$/, '');
  } catch {
    // Not a URL at all: same answer.
  }
  return null;
}

const appIdOf = (appId) => (typeof appId === 'string' && appId.trim()) || null;

/**
 * Checks `Aviso.init` options and fills in defaults. `scriptOrigin` (where the widget was loaded
 * from) stands in for a missing `server`, since the widget is normally served by the server itself.
 * Throws a TypeError that says which option is wrong and how to fix it.
 */
export function parseWidgetConfig(given, scriptOrigin) {
  const options = given && typeof given === 'object' ? given : {};
  const config = { ...WIDGET_DEFAULTS, ...options };
  const problem = (name, expected) => {
    throw new TypeError(`Aviso.init: "${name}" must be ${expected} (got ${JSON.stringify(options[name])})`);
  };
  config.server = normalizeServer(options.server ?? scriptOrigin) || problem('server', 'the URL of your Aviso server, like "https://push.example.com"');
  config.appId = appIdOf(options.appId) || problem('appId', 'your app\'s id (see `aviso apps list`)');
  for (const name of ['pageViews', 'seconds', 'cooldownDays']) {
    if (!(typeof config[name] === 'number' && config[name] >= 0)) problem(name, 'a number, 0 or more');
  }
  if (config.style !== 'banner' && config.style !== 'bell') problem('style', '"banner" or "bell"');
  config.cooldownMs = config.cooldownDays * DAY_MS;
  return config;
}

/**
 * The URL the widget registers: the service worker path with `server` and `app` in its query, so
 * that the worker knows where to report without any other configuration.
 */
export function serviceWorkerUrl(config, pageHref) {
  const url = new URL(config.serviceWorkerPath, pageHref);
  url.searchParams.set('server', config.server);
  url.searchParams.set('app', config.appId);
  return url.href;
}

/**
 * The service worker's configuration: `self.AVISO_CONFIG` (`{server, appId}`, for a site's own
 * worker that calls `importScripts`) wins over the worker's own URL query (`?server=…&app=…`).
 * Returns null when neither names a server and an app: the worker then shows notifications but
 * cannot report or resubscribe.
 */
export function parseWorkerConfig(workerHref, globalConfig) {
  const query = new URL(workerHref).searchParams;
  const given = globalConfig && typeof globalConfig === 'object' ? globalConfig : {};
  const server = given.server ?? query.get('server');
  const appId = given.appId ?? given.app ?? query.get('app');
  const config = { server: normalizeServer(server), appId: appIdOf(appId) };
  return config.server && config.appId ? config : null;
}
