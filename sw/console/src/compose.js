// The compose form's values → the API's `POST /v1/notifications` request (pure: no DOM). Only
// what the API takes today: content, audience, when, TTL and urgency.
import { toFilter } from './segment.js';

export const MAX_ACTIONS = 2;
export const TTL_CHOICES = [
  ['3600', '1 hour'],
  ['86400', '1 day'],
  ['604800', '1 week'],
  ['2419200', '4 weeks (the default)'],
];
export const URGENCIES = ['', 'very-low', 'low', 'normal', 'high'];

const text = (value) => {
  const trimmed = (value || '').trim();
  return trimmed === '' ? undefined : trimmed;
};

/** The ids of the external-ids box: one per line or comma, blanks dropped, repeats once. */
export function parseIds(textValue) {
  return [...new Set((textValue || '').split(/[\n,]/).map((id) => id.trim()).filter(Boolean))];
}

/** The audience of the form: `"all"`, `{segment}` or `{external_ids}`. */
export function toAudience(values) {
  if (values.audience === 'segment') return { segment: toFilter(values.segment) };
  if (values.audience === 'external_ids') return { external_ids: parseIds(values.externalIds) };
  return 'all';
}

/**
 * The request for the form's values. `values.sendAt` is a `datetime-local` value (the browser's
 * local time); absent or `when: 'now'` sends at once.
 */
export function toRequest(values) {
  const content = {
    title: values.title ?? '',
    body: text(values.body),
    icon: text(values.icon),
    image: text(values.image),
    url: text(values.url),
  };
  const actions = (values.actions || []).slice(0, MAX_ACTIONS)
    .map((action, i) => ({ action: `action-${i + 1}`, title: text(action.title), url: text(action.url) }))
    .filter((action) => action.title);
  if (actions.length) content.actions = actions;
  const request = { audience: toAudience(values), content };
  if (values.when === 'at') {
    const at = values.sendAt ? new Date(values.sendAt) : null;
    // An unreadable time goes to the API as typed, so that its message names the field.
    request.send_at = at && !Number.isNaN(at.getTime()) ? at.toISOString() : (values.sendAt || '');
  }
  if (text(values.ttl)) request.ttl = Number(values.ttl);
  if (text(values.urgency)) request.urgency = values.urgency;
  return JSON.parse(JSON.stringify(request));
}
