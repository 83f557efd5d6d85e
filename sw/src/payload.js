//! From a push message's text to `showNotification(title, options)`, and from a click back to the
//! URL to open. The payload is a Declarative Web Push message with an `aviso` member for tracking
//! (docs/PUBLIC-API.md); anything else a push may carry (plain text, other JSON, broken JSON) is
//! still shown, as the body, because a push that shows nothing is a broken promise to the browser.

/** Browsers show at most two action buttons on most platforms; more is a sender's mistake. */
export const MAX_ACTIONS = 2;

const isObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);
const text = (value) => (typeof value === 'string' && value ? value : undefined);

/**
 * An http(s) URL resolved against `base`, or undefined for anything else (`javascript:` and
 * other schemes a stranger's payload must not make the browser open).
 */
export function safeUrl(value, base) {
  if (typeof value !== 'string' || !value) return undefined;
  try {
    const url = new URL(value, base);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : undefined;
  } catch {
    return undefined;
  }
}

/**
 * @param {string|null|undefined} payloadText the push message's data as text
 * @param {object} context
 * @param {string} context.origin the worker's origin: relative URLs resolve against it
 * @param {string} context.defaultTitle the title when the payload has none
 * @returns {{title: string, options: NotificationOptions, appBadge?: number, tracking?: {n: string, s: string, t: string, v?: number}}}
 */
export function notificationFromPayload(payloadText, { origin, defaultTitle }) {
  const raw = payloadText == null ? '' : String(payloadText);
  let message;
  try {
    message = JSON.parse(raw);
  } catch {
    message = undefined;
  }
  // A Declarative Web Push message, or a bare notification object as other senders use.
  const shown = isObject(message) && (isObject(message.notification) ? message.notification : message);
  if (!shown || (typeof shown.title !== 'string' && typeof shown.body !== 'string')) {
    const body = typeof message === 'string' ? message : raw;
    return { title: defaultTitle, options: { body, data: { url: safeUrl('/', origin) } } };
  }

  const url = safeUrl(shown.navigate ?? shown.url, origin) ?? safeUrl('/', origin);
  const actionUrls = {};
  const actions = [];
  for (const action of Array.isArray(shown.actions) ? shown.actions : []) {
    if (actions.length === MAX_ACTIONS) break;
    if (!isObject(action) || !text(action.action) || !text(action.title)) continue;
    actions.push({ action: action.action, title: action.title, ...(text(action.icon) && { icon: safeUrl(action.icon, origin) }) });
    actionUrls[action.action] = safeUrl(action.navigate ?? action.url, origin) ?? url;
  }

  // The ids to report back, and the receipt token that proves the report (`aviso.t`); an A/B
  // variant's push names its variant (`aviso.v`), which the token covers.
  const tracking = isObject(message.aviso) && text(message.aviso.n) && text(message.aviso.s) && text(message.aviso.t)
    ? { n: message.aviso.n, s: message.aviso.s, t: message.aviso.t }
    : undefined;
  if (tracking && Number.isInteger(message.aviso.v) && message.aviso.v >= 0) tracking.v = message.aviso.v;
  const options = {
    body: typeof shown.body === 'string' ? shown.body : '',
    data: { url, actionUrls, aviso: tracking, data: shown.data },
  };
  for (const key of ['icon', 'image', 'badge']) {
    const value = safeUrl(shown[key], origin);
    if (value) options[key] = value;
  }
  for (const key of ['tag', 'lang']) if (text(shown[key])) options[key] = shown[key];
  if (shown.dir === 'ltr' || shown.dir === 'rtl' || shown.dir === 'auto') options.dir = shown.dir;
  if (shown.require_interaction === true || shown.requireInteraction === true) options.requireInteraction = true;
  if (shown.silent === true) options.silent = true;
  // Browsers reject `renotify` without a tag.
  if (shown.renotify === true && options.tag) options.renotify = true;
  if (Number.isFinite(shown.timestamp)) options.timestamp = shown.timestamp;
  if (Array.isArray(shown.vibrate) && shown.vibrate.every(Number.isFinite)) options.vibrate = shown.vibrate;
  if (actions.length) options.actions = actions;

  const result = { title: typeof shown.title === 'string' ? shown.title : defaultTitle, options, tracking };
  const badge = Number(shown.app_badge);
  if (shown.app_badge != null && Number.isInteger(badge) && badge >= 0) result.appBadge = badge;
  return result;
}

/**
 * The URL to open for a click on the notification (`action` is "" for the notification itself,
 * or the id of the button clicked): the action's own URL, else the notification's, else the site.
 */
export function clickUrl(data, action, origin) {
  const fallback = safeUrl('/', origin);
  if (!isObject(data)) return fallback;
  const forAction = action && isObject(data.actionUrls) ? safeUrl(data.actionUrls[action], origin) : undefined;
  return forAction ?? safeUrl(data.url, origin) ?? fallback;
}

/**
 * Which open window to focus for `target`: one showing exactly that URL (ignoring the fragment),
 * or -1 to open a new one.
 */
export function pickWindow(windowUrls, target) {
  const strip = (href) => String(href).split('#')[0];
  return windowUrls.findIndex((href) => strip(href) === strip(target));
}
