// Overview: subscribers (total, by push service, by language, growth) and the notifications
// sent, with their counters, filters and "more".
import { api } from '../api.js';
import { fill, generalError, h, showError, clearErrors, field } from '../dom.js';
import { audienceText, count, failed, serviceName, statusText, when } from '../format.js';

function bars(title, entries, name = (k) => k) {
  const total = entries.reduce((sum, [, n]) => sum + n, 0) || 1;
  const sorted = [...entries].sort((a, b) => b[1] - a[1]);
  return h('section', { class: 'card' }, h('h2', {}, title),
    sorted.length === 0 ? h('p', { class: 'muted' }, 'No subscribers yet.')
      : h('ul', { class: 'bars' }, sorted.map(([key, n]) => h('li', {},
        h('span', { class: 'bar-label' }, name(key)),
        h('span', { class: 'bar', 'data-width': Math.round((n / total) * 100) }),
        h('span', { class: 'bar-value' }, `${count(n)} (${Math.round((n / total) * 100)}%)`)))));
}

/** Bars' widths without inline style (the CSP forbids it): a class per 5%. */
function sizeBars(root) {
  for (const bar of root.querySelectorAll('.bar[data-width]')) bar.classList.add(`w${Math.round(Number(bar.dataset.width) / 5) * 5}`);
}

function growth(days) {
  const top = Math.max(1, ...days.map((d) => d.subscribed));
  const width = 300;
  const height = 60;
  const step = width / days.length;
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('class', 'growth');
  svg.setAttribute('role', 'img');
  const total = days.reduce((sum, d) => sum + d.subscribed, 0);
  svg.setAttribute('aria-label', `${count(total)} new subscribers in the last ${days.length} days`);
  days.forEach((d, i) => {
    const rect = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
    const barHeight = (d.subscribed / top) * (height - 2);
    rect.setAttribute('x', (i * step + 1).toFixed(1));
    rect.setAttribute('y', (height - barHeight).toFixed(1));
    rect.setAttribute('width', (step - 2).toFixed(1));
    rect.setAttribute('height', barHeight.toFixed(1));
    const label = document.createElementNS('http://www.w3.org/2000/svg', 'title');
    label.textContent = `${new Date(d.day * 1000).toLocaleDateString('en', { dateStyle: 'medium' })}: ${d.subscribed}`;
    rect.append(label);
    svg.append(rect);
  });
  return h('section', { class: 'card' }, h('h2', {}, 'New subscribers, last 30 days'), svg,
    h('p', { class: 'muted' }, `${count(total)} in 30 days (still subscribed).`));
}

/** One row of the notifications table. */
export function notificationRow(n) {
  const c = n.counters || {};
  return h('tr', {},
    h('td', {}, h('a', { href: `#/n/${n.id}` }, n.content.title)),
    h('td', {}, statusText(n)),
    h('td', {}, audienceText(n.audience)),
    h('td', {}, when(n.send_at_ms)),
    ...['targeted', 'delivered', 'shown', 'clicked'].map((k) => h('td', { class: 'num' }, k in c || k !== 'targeted' ? count(c[k]) : '–')),
    h('td', { class: 'num' }, count(failed(c))));
}

export async function overview(main) {
  const statsArea = h('div', { class: 'grid', 'aria-busy': 'true' }, generalError());
  const rows = h('tbody');
  const more = h('button', { type: 'button', hidden: true }, 'Show more');
  const status = h('select', {}, h('option', { value: '' }, 'any'), h('option', { value: 'queued' }, 'queued'), h('option', { value: 'cancelled' }, 'cancelled'));
  const audience = h('select', {}, h('option', { value: '' }, 'any'), ...['all', 'segment', 'external_ids', 'subscription_ids'].map((k) => h('option', { value: k }, k.replace('_', ' '))));
  const filters = h('form', { class: 'filters' }, field('Status', status, { field: 'status' }), field('Audience', audience, { field: 'audience' }), generalError());
  const list = h('section', { class: 'card wide' }, h('h2', {}, 'Notifications'), filters,
    h('div', { class: 'scroll' }, h('table', {}, h('caption', { class: 'sr-only' }, 'Notifications, newest first'),
      h('thead', {}, h('tr', {}, ...['Title', 'Status', 'Audience', 'Send time', 'Targeted', 'Delivered', 'Shown', 'Clicked', 'Failed'].map((t) => h('th', { scope: 'col' }, t)))),
      rows)), more);
  fill(main, h('h1', {}, 'Overview'), statsArea, list);

  let cursor = null;
  async function load(reset) {
    clearErrors(filters);
    const query = { limit: '20' };
    if (status.value) query.status = status.value;
    if (audience.value) query.audience = audience.value;
    if (!reset && cursor) query.cursor = cursor;
    try {
      const page = await api.history(query);
      if (reset) rows.replaceChildren();
      rows.append(...page.notifications.map(notificationRow));
      if (reset && page.notifications.length === 0) rows.append(h('tr', {}, h('td', { colspan: 9, class: 'muted' }, 'No notifications yet: write one in Compose.')));
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
    } catch (error) {
      showError(filters, error);
    }
  }
  status.addEventListener('change', () => load(true));
  audience.addEventListener('change', () => load(true));
  more.addEventListener('click', () => load(false));

  const stats = api.stats().then((s) => {
    fill(statsArea,
      h('section', { class: 'card' }, h('h2', {}, 'Subscribers'), h('p', { class: 'big', 'data-testid': 'total' }, count(s.total)),
        !s.complete && h('p', { class: 'muted' }, `Breakdowns from a sample of ${count(s.scanned)} subscribers.`)),
      bars('By push service', Object.entries(s.by_push_service), serviceName),
      bars('By browser language', Object.entries(s.by_language)),
      growth(s.growth));
    sizeBars(statsArea);
  }, (error) => showError(statsArea, error)).finally(() => statsArea.removeAttribute('aria-busy'));
  await Promise.all([stats, load(true)]);
}
