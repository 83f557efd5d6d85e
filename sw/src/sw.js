//! Aviso's service worker: shows each push as a notification (also the one Safari proposes for a
//! mutable Declarative Web Push message, `pushnotification`) and reports `shown`, `clicked` and
//! `closed` to the server; opens (or focuses) the notification's URL on a click; subscribes again
//! when the browser replaces the subscription, sending the old one's endpoint and auth secret as
//! `replaces` so that the server moves its tags and profile link to the new one. Chrome and Safari
//! fire `pushsubscriptionchange` without `oldSubscription`: the worker keeps the current
//! subscription's endpoint and auth itself (Cache Storage, `subscription.js`). Runs on its own (`/sdk/aviso-sw.js?server=…&app=…`)
//! or inside a site's worker through `importScripts` (configured by `self.AVISO_CONFIG`).
//!
//! Reports are best effort: a server that cannot be reached must never keep a notification from
//! showing. Everything asynchronous runs inside `event.waitUntil`, so the browser keeps the worker
//! alive until it is done.

import { apiBase, parseWorkerConfig } from './config.js';
import { call, fetchVapidKey, ownership, visitorContext } from './api.js';
import { clickUrl, notificationFromPayload, notificationFromProposed, pickWindow } from './payload.js';
import { recall, remember } from './subscription.js';

/** Keeps the browser's current subscription's proof of ownership for a later renewal. Best effort. */
function rememberCurrent() {
  const manager = self.registration && self.registration.pushManager;
  if (!manager || !manager.getSubscription) return Promise.resolve();
  return manager.getSubscription()
    .then((subscription) => subscription && remember(self, ownership(subscription)))
    .catch(() => {});
}

/** Read at each event, not once, so that `AVISO_CONFIG` may be set after `importScripts` too. */
function base() {
  const config = parseWorkerConfig(self.location.href, self.AVISO_CONFIG);
  return config && apiBase(config.server, config.appId);
}

function report(type, data, action) {
  const tracking = data && data.aviso;
  const api = base();
  if (!tracking || !api) return Promise.resolve();
  const event = { notification_id: tracking.n, subscription_id: tracking.s, token: tracking.t, type };
  if (action) event.action = action;
  if (tracking.v !== undefined) event.variant = tracking.v;
  return call(api, '/events', event).catch((error) => console.warn(`Aviso: could not report "${type}":`, error));
}

/** Shows a notification (the worker's own, so that its click reaches `notificationclick`), then reports it. */
function show({ title, options, appBadge }) {
  const work = [self.registration.showNotification(title, options).then(() => report('shown', options.data)), rememberCurrent()];
  if (appBadge !== undefined && self.navigator.setAppBadge) {
    work.push(self.navigator.setAppBadge(appBadge).catch(() => {}));
  }
  return Promise.all(work);
}

const context = () => ({ origin: self.location.origin, defaultTitle: self.location.hostname });

self.addEventListener('push', (event) => {
  // The Push API's Declarative Web Push: a mutable message arrives as the notification the
  // browser made of it, with no data.
  const shown = !event.data && event.notification
    ? notificationFromProposed(event.notification, event.appBadge, context())
    : notificationFromPayload(event.data ? event.data.text() : '', context());
  event.waitUntil(show(shown));
});

// Safari 18.4+ (WebKit's name for the same): the notification it would show for a mutable
// Declarative Web Push message. Showing one here replaces it; if this fails, Safari shows its own.
self.addEventListener('pushnotification', (event) => {
  event.waitUntil(show(notificationFromProposed(event.proposedNotification, event.proposedAppBadge, context())));
});

async function focusOrOpen(url) {
  const windows = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const index = pickWindow(windows.map((client) => client.url), url);
  if (index >= 0 && 'focus' in windows[index]) return windows[index].focus();
  return self.clients.openWindow(url);
}

self.addEventListener('notificationclick', (event) => {
  const { notification, action } = event;
  notification.close();
  const url = clickUrl(notification.data, action, self.location.origin);
  event.waitUntil(Promise.all([focusOrOpen(url), report('clicked', notification.data, action)]));
});

self.addEventListener('notificationclose', (event) => {
  event.waitUntil(report('closed', event.notification.data));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(rememberCurrent());
});

async function resubscribe(oldSubscription, newSubscription) {
  const api = base();
  if (!api) return;
  const replaces = oldSubscription ? ownership(oldSubscription) : await recall(self);
  let subscription = newSubscription;
  if (!subscription) {
    const key = (oldSubscription && oldSubscription.options && oldSubscription.options.applicationServerKey)
      || (await fetchVapidKey(api));
    subscription = await self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  }
  const body = { subscription: subscription.toJSON(), ...visitorContext() };
  // The server moves the old subscription's tags and profile link over and deletes it.
  if (replaces && replaces.endpoint && replaces.auth) body.replaces = replaces;
  await call(api, '/subscriptions', body);
  await remember(self, ownership(subscription));
}

self.addEventListener('pushsubscriptionchange', (event) => {
  event.waitUntil(
    resubscribe(event.oldSubscription, event.newSubscription).catch((error) =>
      console.warn('Aviso: could not renew the push subscription:', error)),
  );
});
