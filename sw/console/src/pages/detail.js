// Notification detail: what it says and to whom, its counters, a chart of delivered / shown /
// clicked that moves while the page is open, and cancel. The server keeps totals, not a time
// series: the chart is the counters sampled every SAMPLE_MS since this page opened.
import { api } from '../api.js';
import { clearErrors, fill, generalError, h, showError } from '../dom.js';
import { SERIES, geometry } from '../chart.js';
import { audienceText, count, failed, statusText, when } from '../format.js';

export const SAMPLE_MS = 2000;
const WIDTH = 600;
const HEIGHT = 180;
const svg = (tag, attributes = {}) => {
  const element = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  return element;
};

function chart(samples) {
  const { top, span, paths } = geometry(samples, WIDTH, HEIGHT);
  const last = samples[samples.length - 1]?.counters || {};
  const root = svg('svg', { viewBox: `-40 -10 ${WIDTH + 50} ${HEIGHT + 30}`, class: 'chart', role: 'img',
    'aria-label': `Over the last ${Math.round(span / 1000)} s: ${SERIES.map(([k, label]) => `${label} ${last[k] || 0}`).join(', ')}` });
  for (const fraction of [0, 0.5, 1]) {
    const y = HEIGHT - fraction * HEIGHT;
    root.append(svg('line', { x1: 0, x2: WIDTH, y1: y, y2: y, class: 'grid-line' }));
    const label = svg('text', { x: -8, y: y + 4, 'text-anchor': 'end', class: 'axis' });
    const value = top * fraction;
    label.textContent = Number.isInteger(value) ? String(value) : value.toFixed(1);
    root.append(label);
  }
  const age = svg('text', { x: WIDTH, y: HEIGHT + 18, 'text-anchor': 'end', class: 'axis' });
  age.textContent = `last ${Math.round(span / 1000)} s`;
  root.append(age);
  for (const [key] of SERIES) root.append(svg('path', { d: paths[key], class: `series ${key}` }));
  return root;
}

function counterList(counters) {
  const shown = [['targeted', 'Targeted'], ['sent', 'Sent'], ['delivered', 'Delivered'], ['shown', 'Shown'], ['clicked', 'Clicked'], ['closed', 'Closed'], ['expired', 'Expired']];
  return h('dl', { class: 'counters' },
    // `targeted` is known up front only for named recipients; broadcasts count as they go.
    shown.map(([key, label]) => h('div', { 'data-counter': key }, h('dt', {}, label), h('dd', {}, key in counters || key !== 'targeted' ? count(counters[key]) : '–'))),
    h('div', { 'data-counter': 'failed' }, h('dt', {}, 'Failed'), h('dd', {}, count(failed(counters)))));
}

export async function detail(main, { param: id }) {
  const samples = [];
  const heading = h('h1', {}, 'Notification');
  const facts = h('dl', { class: 'facts' });
  const counters = h('div', { 'aria-live': 'polite' });
  const chartArea = h('figure', { class: 'chart-area' });
  const cancelArea = h('div', { class: 'buttons' });
  const errors = h('div', {}, generalError());
  fill(main, heading, errors, facts, h('section', { class: 'card wide' }, h('h2', {}, 'Counters'), counters),
    h('section', { class: 'card wide' }, h('h2', {}, 'Delivered, shown and clicked'), chartArea,
      h('p', { class: 'muted' }, `Sampled every ${SAMPLE_MS / 1000} s while this page is open (the server keeps totals, not a history): leave it open to watch a send.`)),
    cancelArea);

  let current = null;
  function render(notification) {
    current = notification;
    const c = notification.counters || {};
    fill(heading, notification.content.title);
    fill(facts,
      h('dt', {}, 'Status'), h('dd', { 'data-testid': 'status' }, statusText(notification)),
      h('dt', {}, 'Audience'), h('dd', {}, audienceText(notification.audience)),
      h('dt', {}, 'Send time'), h('dd', {}, when(notification.send_at_ms)),
      h('dt', {}, 'Created'), h('dd', {}, when(notification.created_at_ms)),
      notification.content.body && [h('dt', {}, 'Body'), h('dd', {}, notification.content.body)],
      h('dt', {}, 'Id'), h('dd', {}, h('code', {}, notification.id)));
    fill(counters, counterList(c));
    fill(chartArea, chart(samples),
      h('figcaption', { class: 'legend' }, SERIES.map(([key, label]) => h('span', { class: `key ${key}` }, `${label}: ${count(c[key])}`))));
    const cancellable = notification.status === 'queued' && (notification.send_at_ms > Date.now() || (c.sent || 0) < (c.targeted ?? Infinity));
    const cancel = h('button', { type: 'button', class: 'danger', disabled: !cancellable }, notification.status === 'cancelled' ? 'Cancelled' : 'Cancel this notification');
    cancel.addEventListener('click', async () => {
      clearErrors(cancelArea);
      try {
        render(await api.cancel(id));
      } catch (error) {
        showError(cancelArea, error);
      }
    });
    fill(cancelArea, cancel, generalError());
  }

  async function sample() {
    try {
      const notification = await api.notification(id);
      samples.push({ t: Date.now(), counters: notification.counters || {} });
      if (samples.length > 900) samples.shift();
      clearErrors(errors);
      render(notification);
    } catch (error) {
      showError(errors, error);
    }
  }
  await sample();
  const timer = setInterval(() => { if (current) sample(); }, SAMPLE_MS);
  return () => clearInterval(timer);
}
