//! `window.Aviso`, the opt-in widget a site embeds: decides when to show the soft prompt
//! (prompt.js), asks the browser for permission only after the visitor accepted it, registers
//! the service worker, subscribes with the app's VAPID key and keeps the server up to date
//! (docs/PUBLIC-API.md). Remembers a "no" and never nags; says in `console.info`, and nowhere
//! else, why push is off where the browser has none.

import { apiBase, parseWidgetConfig, serviceWorkerUrl } from './config.js';
import { base64UrlToBytes, call, fetchVapidKey, ownership, sameKey, visitorContext } from './api.js';
import { pickLanguage, resolveTexts } from './i18n.js';
import { detectPlatform } from './platform.js';
import { decidePrompt } from './prompt.js';
import { changesNothing, mergeTags, normalizeTags } from './tags.js';
import { showPrompt } from './ui.js';

// The server that served this script, the default for `server` (read now: currentScript is only
// set while the script first runs).
const script = document.currentScript;
const scriptServer = script && script.src ? script.src.replace(/\/sdk\/[^/]*$/, '') : undefined;

/** localStorage (or sessionStorage) under "aviso:", in memory where storage is off (private modes). */
const memory = {};
function storage(session) {
  try {
    return session ? sessionStorage : localStorage;
  } catch {
    return null;
  }
}
function load(key, session) {
  try {
    return JSON.parse(storage(session).getItem(`aviso:${key}`));
  } catch {
    return memory[key] ?? null;
  }
}
function save(key, value, session) {
  memory[key] = value;
  try {
    storage(session).setItem(`aviso:${key}`, JSON.stringify(value));
  } catch {
    // Storage is full or off: memory keeps it for this page.
  }
}

let started;
let config;
let api;
let platform;
let workerUrl;
let scope;
let visitStart;
let pageViews;
let interacted = false;
let subscribed = false;
let timer;
let removePrompt;

function permission() {
  return 'Notification' in window ? Notification.permission : 'default';
}

async function registration() {
  const found = await navigator.serviceWorker.getRegistration(scope);
  return found && found.scope === scope ? found : null;
}

/** Registers the worker and waits until it is active: the Push API needs an active worker. */
async function register() {
  const found = await navigator.serviceWorker.register(workerUrl, { scope });
  if (found.active) return found;
  const worker = found.installing || found.waiting;
  await new Promise((resolve, reject) => {
    worker.addEventListener('statechange', () => {
      if (worker.state === 'activated') resolve();
      if (worker.state === 'redundant') reject(new Error(`Aviso: the service worker ${workerUrl} failed to install`));
    });
  });
  return found;
}

async function currentSubscription() {
  if (platform.kind !== 'supported') return null;
  const found = await registration();
  return found && found.pushManager.getSubscription();
}

/** Sends the subscription, with the tags and identity the site gave, unless the server has it. */
async function sync(subscription, force) {
  subscribed = true;
  if (!force && load('endpoint') === subscription.endpoint) return;
  const tags = load('tags') || {};
  await call(api, '/subscriptions', {
    subscription: subscription.toJSON(),
    ...visitorContext(),
    ...(Object.keys(tags).length && { tags }),
  });
  save('endpoint', subscription.endpoint);
  if (force) changed(true);
  // Separately, so that a wrong identity hash (403) cannot cost the subscription itself.
  await sendIdentity(subscription);
}

/** Sends the stored identity for this subscription, unless it was sent already. */
async function sendIdentity(subscription) {
  const identity = load('identity');
  const sent = identity && [subscription.endpoint, identity.external_id, identity.identity_hash].join(' ');
  if (!identity || load('identified') === sent) return;
  await call(api, '/subscriptions/identify', { ...ownership(subscription), ...identity });
  save('identified', sent);
}

let subscribing;

/** Subscribes (permission is granted); concurrent callers share one attempt. */
function subscribeQuietly() {
  subscribing ||= subscribeNow().finally(() => {
    subscribing = null;
  });
  return subscribing;
}

async function subscribeNow() {
  const found = await register();
  const key = config.vapidPublicKey ? base64UrlToBytes(config.vapidPublicKey) : await fetchVapidKey(api);
  let subscription = await found.pushManager.getSubscription();
  if (subscription && !sameKey(subscription.options.applicationServerKey, key)) {
    // Made with another key (the app's key changed): the push service would refuse our pushes.
    await subscription.unsubscribe();
    subscription = null;
  }
  subscription ||= await found.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  save('optedOut', null);
  await sync(subscription, true);
  return true;
}

/** Asks the browser; must run inside the click that accepted the soft prompt (user activation). */
async function askBrowser() {
  const answer = await Notification.requestPermission();
  if (answer === 'granted') return subscribeQuietly();
  // "denied" is the browser's to remember; a dismissed prompt is a "no" for us to remember.
  if (answer === 'default') save('declined', Date.now());
  return false;
}

/** Tells the site (`onChange` option) that this visitor subscribed or unsubscribed. */
function changed(isSubscribed) {
  if (typeof config.onChange === 'function') config.onChange(isSubscribed);
}

/** Failures of work the widget does on its own (no promise to reject): the console and `onError`. */
function warn(error) {
  console.warn(error);
  if (typeof config.onError === 'function') config.onError(error);
}

function evaluate(force) {
  if (removePrompt) return;
  const decision = decidePrompt({
    platform: platform.kind,
    permission: permission(),
    subscribed,
    pageViews,
    secondsOnSite: (Date.now() - visitStart) / 1000,
    interacted,
    declinedAt: load('declined'),
    optedOut: load('optedOut'),
    now: Date.now(),
  }, config, force);
  if (decision.action === 'subscribe') subscribeQuietly().catch(warn);
  if (decision.action === 'wait' && decision.seconds > 0) {
    clearTimeout(timer);
    timer = setTimeout(evaluate, decision.seconds * 1000);
  }
  if (decision.action === 'prompt') {
    const texts = resolveTexts(config.language || pickLanguage(navigator.languages || [navigator.language]), config.texts);
    removePrompt = showPrompt({
      texts,
      kind: decision.kind,
      style: config.style,
      onAllow: () => {
        removePrompt = null;
        askBrowser().catch(warn);
      },
      onDecline: () => {
        removePrompt = null;
        save('declined', Date.now());
      },
    });
  }
}

async function start() {
  api = apiBase(config.server, config.appId);
  platform = detectPlatform(navigator, window);
  if (platform.kind === 'unsupported') {
    console.info(`Aviso: push notifications are off on this page: ${platform.reason}.`);
    return;
  }
  workerUrl = serviceWorkerUrl(config, location.href);
  scope = new URL(config.serviceWorkerScope || './', workerUrl).href;
  pageViews = (load('views') || 0) + 1;
  save('views', pageViews);
  visitStart = load('since', true) || Date.now();
  save('since', visitStart, true);
  const existing = permission() === 'granted' && (await currentSubscription());
  if (existing) await sync(existing).catch(warn);
  if (!config.autoPrompt) return;
  const gestures = ['pointerdown', 'keydown'];
  const onInteraction = () => {
    interacted = true;
    for (const type of gestures) removeEventListener(type, onInteraction, true);
    evaluate();
  };
  for (const type of gestures) addEventListener(type, onInteraction, true);
  evaluate();
}

function checkStarted() {
  if (!started) throw new Error('Aviso: call Aviso.init({server, appId}) first');
}

async function ready() {
  checkStarted();
  await started;
  return platform.kind !== 'unsupported';
}

window.Aviso = {
  /** Starts the widget; resolves once it knows whether this visitor is subscribed. */
  init(options) {
    if (started) {
      console.warn('Aviso.init: called twice, the first options stay');
      return started;
    }
    try {
      config = parseWidgetConfig(options, scriptServer);
    } catch (error) {
      return Promise.reject(error);
    }
    started = start();
    return started;
  },

  /** Shows the soft prompt now, whatever the conditions and a past "no" (never over `denied`). */
  async prompt() {
    if (await ready()) evaluate(true);
  },

  /**
   * Skips the soft prompt: asks the browser at once. Call it from a click handler of your own.
   * Resolves to whether the visitor is subscribed.
   */
  async subscribe() {
    checkStarted();
    if (platform && platform.kind !== 'supported') return false;
    // Before any await, so the browser still sees the click.
    const asked = 'Notification' in window && permission() === 'default' ? askBrowser() : null;
    if (!(await ready()) || platform.kind !== 'supported') return false;
    if (asked) return asked;
    return permission() === 'granted' && subscribeQuietly();
  },

  /** Links this visitor to a CRM profile; `hash` is HMAC-SHA256(identity secret, externalId) from your backend. */
  async identify(externalId, hash) {
    if (typeof externalId !== 'string' || !externalId || typeof hash !== 'string' || !hash) {
      throw new TypeError('Aviso.identify(externalId, hash) needs both: the hash is your backend\'s hex HMAC-SHA256 of externalId');
    }
    save('identity', { external_id: externalId, identity_hash: hash });
    const subscription = (await ready()) && (await currentSubscription());
    if (subscription) await sendIdentity(subscription);
  },

  /** Sets tags (`null` removes one); kept until the visitor subscribes when they have not yet. */
  async setTags(tags) {
    const changes = normalizeTags(tags);
    const current = load('tags') || {};
    save('tags', mergeTags(current, changes));
    const subscription = (await ready()) && (await currentSubscription());
    if (!subscription || (changesNothing(current, changes) && load('endpoint') === subscription.endpoint)) return;
    try {
      await call(api, '/subscriptions/tags', { ...ownership(subscription), tags: changes });
    } catch (error) {
      // Not on the server: forget them here too, so that the same call tries again.
      save('tags', current);
      throw error;
    }
  },

  /**
   * Unsubscribes this browser, here and on the server, and stops automatic prompts (`prompt()` and
   * `subscribe()` still work). Resolves to whether it was subscribed.
   */
  async unsubscribe() {
    const subscription = (await ready()) && (await currentSubscription());
    if (!subscription) return false;
    subscribed = false;
    save('endpoint', null);
    // The permission stays granted: without this the next page would subscribe them again.
    save('optedOut', true);
    try {
      await call(api, '/subscriptions/unsubscribe', ownership(subscription));
    } finally {
      // Even when the server cannot be told: the push service then reports the endpoint gone.
      await subscription.unsubscribe();
      changed(false);
    }
    return true;
  },

  /** Whether this browser has a push subscription for the app. */
  async isSubscribed() {
    return Boolean((await ready()) && permission() === 'granted' && (await currentSubscription()));
  },

  /** This browser's PushSubscription for the app, or null. */
  async getSubscription() {
    return ((await ready()) && (await currentSubscription())) || null;
  },
};
