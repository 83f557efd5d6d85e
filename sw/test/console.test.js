// The console's pure modules: the segment builder's filters, the compose form's request, the
// chart's geometry, field paths and problem documents.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { emptySegment, needsValue, toFilter } from '../console/src/segment.js';
import { parseIds, toAudience, toRequest } from '../console/src/compose.js';
import { geometry, niceMax } from '../console/src/chart.js';
import { audienceText, failed, fieldPaths, statusText } from '../console/src/format.js';
import { readProblem } from '../console/src/api.js';

test('the segment builder says what the API filter says', () => {
  const segment = emptySegment();
  segment.conditions[0] = { kind: 'tag', key: ' plan ', op: 'is', value: 'pro', type: 'text' };
  assert.deepEqual(toFilter(segment), { tag: { key: 'plan', value: 'pro' } });
  segment.conditions.push({ kind: 'attribute', key: 'age', op: 'gte', value: '18', type: 'number' });
  segment.conditions.push({ kind: 'tag', key: 'vip', op: 'missing', value: 'ignored', type: 'text' });
  segment.conditions.push({ kind: 'attribute', key: 'member', op: 'eq', value: 'true', type: 'boolean' });
  segment.conditions.push({ kind: 'tag', key: 'city', op: 'is_not', value: 'Lisbon', type: 'text' });
  segment.match = 'any';
  assert.deepEqual(toFilter(segment), { any: [
    { tag: { key: 'plan', value: 'pro' } },
    { attribute: { key: 'age', op: 'gte', value: 18 } },
    { not: { tag: { key: 'vip' } } },
    { attribute: { key: 'member', op: 'eq', value: true } },
    { not: { tag: { key: 'city', value: 'Lisbon' } } },
  ] });
  // Not a number: left as typed, for the API to refuse with its own message.
  assert.deepEqual(toFilter({ match: 'all', conditions: [{ kind: 'attribute', key: 'age', op: 'gt', value: 'ten', type: 'number' }] }),
    { attribute: { key: 'age', op: 'gt', value: 'ten' } });
  assert.equal(needsValue({ kind: 'tag', op: 'exists' }), false);
  assert.equal(needsValue({ kind: 'attribute', op: 'eq' }), true);
});

test('the compose form becomes the API request, with nothing the API does not take', () => {
  const values = {
    title: 'Sale', body: '  ', icon: 'https://x.example/i.png', image: '', url: 'https://shop.example/sale',
    actions: [{ title: 'Open', url: '' }, { title: ' ', url: 'https://x.example' }, { title: 'Third', url: '' }],
    audience: 'all', segment: emptySegment(), externalIds: '', when: 'now', sendAt: '', ttl: '', urgency: '',
  };
  assert.deepEqual(toRequest(values), {
    audience: 'all',
    content: { title: 'Sale', icon: 'https://x.example/i.png', url: 'https://shop.example/sale', actions: [{ action: 'action-1', title: 'Open' }] },
  });
  const later = toRequest({ ...values, when: 'at', sendAt: '2030-05-01T10:30', ttl: '3600', urgency: 'high', audience: 'external_ids', externalIds: 'a\nb, a\n\n' });
  assert.equal(later.send_at, new Date('2030-05-01T10:30').toISOString());
  assert.equal(later.ttl, 3600);
  assert.equal(later.urgency, 'high');
  assert.deepEqual(later.audience, { external_ids: ['a', 'b'] });
  assert.equal(toRequest({ ...values, when: 'at', sendAt: 'soon' }).send_at, 'soon');
  assert.deepEqual(parseIds(' x , y\ny '), ['x', 'y']);
  assert.deepEqual(toAudience({ ...values, audience: 'segment' }), { segment: { tag: { key: '', value: '' } } });
});

test('the chart scales to a round top and steps through the samples', () => {
  assert.equal(niceMax(0), 1);
  assert.equal(niceMax(3), 5);
  assert.equal(niceMax(11), 20);
  assert.equal(niceMax(50), 50);
  const { top, paths, span } = geometry([
    { t: 1000, counters: { delivered: 0 } },
    { t: 2000, counters: { delivered: 3, shown: 1 } },
    { t: 3000, counters: { delivered: 4, shown: 2, clicked: 1 } },
  ], 100, 50);
  assert.equal(top, 5);
  assert.equal(span, 2000);
  assert.equal(paths.delivered, 'M0.0,50.0H50.0V20.0H100.0V10.0');
  assert.equal(paths.clicked, 'M0.0,50.0H50.0V50.0H100.0V40.0');
  assert.equal(geometry([{ t: 5, counters: {} }], 10, 10).paths.shown, 'M0.0,10.0');
});

test('field paths go from the most precise to the least', () => {
  assert.deepEqual(fieldPaths('content.actions[0].url'), ['content.actions[0].url', 'content.actions[0]', 'content.actions', 'content']);
  assert.deepEqual(fieldPaths('origins[2]'), ['origins[2]', 'origins']);
  assert.deepEqual(fieldPaths(''), []);
});

test('problems and counters read as a person needs them', () => {
  assert.deepEqual(readProblem(400, '{"type":"t","title":"Bad Request","status":400,"detail":"too long","field":"content"}'),
    { title: 'Bad Request', detail: 'too long', field: 'content' });
  assert.deepEqual(readProblem(502, '<html>bad gateway</html>'), { detail: '<html>bad gateway</html>', field: null });
  assert.deepEqual(readProblem(500, ''), { detail: 'the server answered 500', field: null });
  assert.equal(failed({ 'failed.gone': 2, 'failed.rejected': 1, delivered: 5 }), 3);
  assert.equal(audienceText('all'), 'Everyone');
  assert.equal(audienceText({ external_ids: ['a'] }), '1 profile');
  assert.equal(statusText({ status: 'queued', send_at_ms: 2000 }, 1000), 'Scheduled');
  assert.equal(statusText({ status: 'queued', send_at_ms: 500 }, 1000), 'Queued');
  assert.equal(statusText({ status: 'sending', send_at_ms: 500 }, 1000), 'Sending');
  assert.equal(statusText({ status: 'completed', send_at_ms: 500 }, 1000), 'Sent');
  assert.equal(statusText({ status: 'cancelled', send_at_ms: 2000 }, 1000), 'Cancelled');
});
