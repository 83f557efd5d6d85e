//! From a push message's text (or the notification a browser made of it) to
//! `showNotification(title, options)`, and from a click back to the URL to open. The payload is a
//! Declarative Web Push message with Aviso's ids in `notification.data.aviso`
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
 * @returns {Shown}
 * @typedef {{title: string, options: NotificationOptions, appBadge?: number, tracking?: {n: string, s: string, t: string, v?: number}}} Shown
 */
export function notificationFromPayload(payloadText, context) {
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
    return { title: context.defaultTitle, options: { body, data: { url: safeUrl('/', context.origin) } } };
  }
  // Workers before the ids moved into `notification.data` read them at the top level.
  // The specification has `app_badge` beside `notification`; earlier senders put it inside.
  return fromShown(shown, shown.app_badge ?? message.app_badge, message.aviso, context);
}

/**
 * The same for a notification the browser made from a Declarative Web Push message and hands
 * the worker before showing it (`mutable`): Safari's `pushnotification` event
 * (`event.proposedNotification`, `event.proposedAppBadge`), or the Push API's `push` event
 * with `event.notification` set and no `data`. `notification` is a `Notification`: its
 * attributes in the DOM's names (`requireInteraction`), not the message's.
 * @returns {Shown}
 */
export function notificationFromProposed(notification, appBadge, context) {
  if (!isObject(notification)) return notificationFromPayload('', context);
  const shown = {};
  for (const key of ['title', 'body', 'navigate', 'icon', 'image', 'badge', 'tag', 'lang', 'dir',
    'requireInteraction', 'silent', 'renotify', 'timestamp', 'vibrate', 'data']) {
    if (notification[key] !== undefined && notification[key] !== null) shown[key] = notification[key];
  }
  // A frozen array of plain objects in the DOM; copied so that `fromShown` may read it as any.
  if (notification.actions) shown.actions = Array.from(notification.actions, (action) => ({ ...action }));
  if (typeof shown.title !== 'string') shown.title = context.defaultTitle;
  return fromShown(shown, appBadge, undefined, context);
}

/** The ids to report back and the receipt token that proves the report, when they are whole. */
function trackingFrom(aviso) {
  if (!isObject(aviso) || !text(aviso.n) || !text(aviso.s) || !text(aviso.t)) return undefined;
  const tracking = { n: aviso.n, s: aviso.s, t: aviso.t };
  // An A/B variant's push names its variant (`v`), which the token covers.
  if (Number.isInteger(aviso.v) && aviso.v >= 0) tracking.v = aviso.v;
  return tracking;
}

/** `showNotification`'s arguments from a notification in the message's names (`shown`). */
function fromShown(shown, appBadge, legacyAviso, { origin, defaultTitle }) {
  const url = safeUrl(shown.navigate ?? shown.url, origin) ?? safeUrl('/', origin);
  const actionUrls = {};
  const actions = [];
  for (const action of Array.isArray(shown.actions) ? shown.actions : []) {
    if (actions.length === MAX_ACTIONS) break;
    if (!isObject(action) || !text(action.action) || !text(action.title)) continue;
    actions.push({ action: action.action, title: action.title, ...(text(action.icon) && { icon: safeUrl(action.icon, origin) }) });
    actionUrls[action.action] = safeUrl(action.navigate ?? action.url, origin) ?? url;
  }

  // Aviso's ids are `data.aviso`, the app's own data `data.data`; another sender's `data` is
  // the app's as it is.
  const ours = isObject(shown.data) && isObject(shown.data.aviso);
  const tracking = trackingFrom(ours ? shown.data.aviso : legacyAviso);
  const options = {
    body: typeof shown.body === 'string' ? shown.body : '',
    data: { url, actionUrls, aviso: tracking, data: ours ? shown.data.data : shown.data },
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
  if (Array.isArray(shown.vibrate) && shown.vibrate.length && shown.vibrate.every(Number.isFinite)) options.vibrate = [...shown.vibrate];
  if (actions.length) options.actions = actions;

  const result = { title: typeof shown.title === 'string' ? shown.title : defaultTitle, options, tracking };
  const badge = Number(appBadge);
  if (appBadge != null && Number.isInteger(badge) && badge >= 0) result.appBadge = badge;
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
