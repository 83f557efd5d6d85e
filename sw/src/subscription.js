//! The service worker's memory of the push subscription it serves: its endpoint and auth secret,
//! the proof of ownership that a renewal sends as `replaces` (docs/PUBLIC-API.md). Chrome and
//! Safari fire `pushsubscriptionchange` without the old subscription, and by then
//! `getSubscription()` answers the new one (or nothing): the worker must have kept the old one.
//! Kept in Cache Storage (available in every worker, no schema to migrate); best effort: a worker
//! without it renews without `replaces`, as before.

const CACHE = 'aviso';
const KEY = '/aviso/subscription';

function storage(scope) {
  return scope && scope.caches && typeof scope.caches.open === 'function' ? scope.caches : null;
}

/** Keeps `{endpoint, auth}` unless it is what is kept already. */
export async function remember(scope, owned) {
  const caches = storage(scope);
  if (!caches || !owned || !owned.endpoint || !owned.auth) return;
  try {
    const kept = await recall(scope);
    if (kept && kept.endpoint === owned.endpoint && kept.auth === owned.auth) return;
    const cache = await caches.open(CACHE);
    const body = JSON.stringify({ endpoint: owned.endpoint, auth: owned.auth });
    await cache.put(KEY, new Response(body, { headers: { 'Content-Type': 'application/json' } }));
  } catch {
    // No storage (private mode, quota): the next renewal goes without `replaces`.
  }
}

/** The `{endpoint, auth}` kept, or null. */
export async function recall(scope) {
  const caches = storage(scope);
  if (!caches) return null;
  try {
    const cache = await caches.open(CACHE);
    const response = await cache.match(KEY);
    if (!response) return null;
    const kept = await response.json();
    return kept && typeof kept.endpoint === 'string' && typeof kept.auth === 'string' ? kept : null;
  } catch {
    return null;
  }
}
