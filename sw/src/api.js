//! Calls to Aviso's public API (docs/PUBLIC-API.md), shared by the widget and the service worker.
//! A failed call rejects with an Error whose message carries the server's problem+json detail,
//! which says what to fix.

/** Fetches `{base}{path}`: GET without a body, POST with `body` as JSON. Resolves to the JSON answer, or null. */
export async function call(base, path, body) {
  const response = await fetch(base + path, body && {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  let json = null;
  try {
    json = JSON.parse(await response.text());
  } catch {
    // Empty (204) or not JSON (a proxy's error page): the status says enough.
  }
  if (!response.ok) {
    const problem = json || {};
    const error = new Error(`Aviso: ${path} answered ${response.status}: ${problem.detail || problem.title || response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return json;
}

/** The app's VAPID public key (the `applicationServerKey`) as bytes. */
export async function fetchVapidKey(base) {
  const answer = await call(base, '/vapid-public-key');
  if (!answer || typeof answer.vapid_public_key !== 'string') {
    throw new Error('Aviso: /vapid-public-key answered without a key');
  }
  return base64UrlToBytes(answer.vapid_public_key);
}

export function base64UrlToBytes(text) {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

/** Whether two keys (ArrayBuffer or bytes) hold the same bytes. */
export function sameKey(a, b) {
  if (!a || !b) return false;
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  return x.length === y.length && x.every((byte, i) => byte === y[i]);
}

/** What the server needs about the visitor's place and language (POST /subscriptions). */
export function visitorContext() {
  const context = {};
  try {
    context.timezone = Intl.DateTimeFormat().resolvedOptions().timeZone || undefined;
  } catch {
    // No Intl time zones here: the server goes without.
  }
  if (navigator.language) context.locale = navigator.language;
  return context;
}

/** The subscription's `endpoint` and `auth` secret: the proof of ownership the public API asks for. */
export function ownership(subscription) {
  const json = subscription.toJSON();
  return { endpoint: json.endpoint, auth: json.keys && json.keys.auth };
}
