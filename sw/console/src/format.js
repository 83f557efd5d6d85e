// Pure formatting and naming helpers (no DOM): numbers, times, push services, API field paths.

/** `content.actions[0].url` → itself, `content.actions[0]`, `content.actions`, `content`. */
export function fieldPaths(name) {
  const paths = [];
  let rest = name;
  while (rest) {
    paths.push(rest);
    const cut = rest.replace(/(\[\d+\]|\.[^.[\]]*)$/, '');
    if (cut === rest) break;
    rest = cut;
  }
  return paths;
}

const numbers = new Intl.NumberFormat('en');
export const count = (n) => numbers.format(n ?? 0);

/** Unix milliseconds as a short local date and time. */
export function when(ms) {
  if (!ms) return '–';
  return new Date(ms).toLocaleString('en', { dateStyle: 'medium', timeStyle: 'short' });
}

const SERVICES = { fcm: 'Google FCM (Chrome, Edge, Android)', mozilla: 'Mozilla (Firefox)', apple: 'Apple (Safari)', wns: 'Microsoft WNS' };
export const serviceName = (key) => SERVICES[key] || key;

/** The audience of a notification in a few words. */
export function audienceText(audience) {
  if (audience === 'all') return 'Everyone';
  if (audience?.segment) return 'Segment';
  if (audience?.external_ids) return `${audience.external_ids.length} profile${audience.external_ids.length === 1 ? '' : 's'}`;
  if (audience?.subscription_ids) return `${audience.subscription_ids.length} subscription${audience.subscription_ids.length === 1 ? '' : 's'}`;
  return '–';
}

/** A notification's state as a person reads it (its life: queued → sending → completed, or cancelled). */
export function statusText(notification, now = Date.now()) {
  switch (notification.status) {
    case 'cancelled': return 'Cancelled';
    case 'completed': return 'Sent';
    case 'sending': return 'Sending';
    default: return notification.send_at_ms > now ? 'Scheduled' : 'Queued';
  }
}

/** The sum of the `failed.*` counters. */
export function failed(counters) {
  return Object.entries(counters || {}).filter(([k]) => k.startsWith('failed')).reduce((sum, [, v]) => sum + v, 0);
}

/** The widget snippet for an app, as sw/README.md gives it. */
export function widgetSnippet(server, appId) {
  return `<script src="${server}/sdk/aviso-widget.js" defer></script>\n`
    + `<script>\n  addEventListener('DOMContentLoaded', () => {\n    Aviso.init({ server: '${server}', appId: '${appId}' });\n  });\n</script>`;
}
