// Profiles & subscribers: look a person up by the CRM's external id, see their attributes, tags
// and subscriptions, and erase them (the profile and every subscription, for GDPR requests).
import { api } from '../api.js';
import { clearErrors, field, fill, generalError, h, showError } from '../dom.js';
import { count, when } from '../format.js';

export async function profiles(main) {
  const externalId = h('input', { type: 'text', required: true, autocomplete: 'off' });
  const form = h('form', { class: 'inline', role: 'search', novalidate: true },
    field('External id', externalId, { field: 'external_id' }),
    h('button', { type: 'submit', class: 'primary' }, 'Look up'), generalError());
  const result = h('div', { 'aria-live': 'polite' });
  fill(main, h('h1', {}, 'Profiles'), h('p', {}, 'Find a person by the id your CRM gives them (the one your site passes to ', h('code', {}, 'Aviso.identify'), ').'), form, result);

  function show(profile) {
    const erase = h('button', { type: 'button', class: 'danger' }, 'Erase this person…');
    const eraseArea = h('div', { class: 'buttons' }, erase, generalError());
    erase.addEventListener('click', () => {
      const confirm = h('button', { type: 'button', class: 'danger' }, `Yes, erase ${profile.external_id} and ${profile.subscriptions.length} subscription${profile.subscriptions.length === 1 ? '' : 's'}`);
      const keep = h('button', { type: 'button' }, 'Keep');
      keep.addEventListener('click', () => show(profile));
      confirm.addEventListener('click', async () => {
        clearErrors(eraseArea);
        try {
          const erased = await api.erase(profile.external_id);
          fill(result, h('p', { role: 'status', class: 'notice' }, `Erased ${profile.external_id}: ${count(erased.deleted_subscriptions)} subscription(s) deleted.`));
        } catch (error) {
          showError(eraseArea, error);
        }
      });
      fill(eraseArea, h('p', {}, 'This deletes the profile and every subscription linked to it, for good.'), confirm, keep, generalError());
      confirm.focus();
    });
    const pairs = (object) => Object.entries(object || {});
    fill(result, h('section', { class: 'card wide' },
      h('h2', {}, profile.external_id),
      h('h3', {}, 'Attributes'),
      pairs(profile.attributes).length ? h('dl', { class: 'facts' }, pairs(profile.attributes).map(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))])) : h('p', { class: 'muted' }, 'None.'),
      h('h3', {}, 'Tags'),
      pairs(profile.tags).length ? h('dl', { class: 'facts' }, pairs(profile.tags).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])) : h('p', { class: 'muted' }, 'None.'),
      h('h3', {}, `Subscriptions (${profile.subscriptions.length})`),
      h('div', { class: 'scroll' }, h('table', {},
        h('thead', {}, h('tr', {}, ['Id', 'Push service', 'Language', 'Time zone', 'Subscribed', 'Last seen'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, profile.subscriptions.map((s) => h('tr', {},
          h('td', {}, h('code', {}, s.id)), h('td', {}, s.endpoint_origin), h('td', {}, s.locale || '–'), h('td', {}, s.timezone || '–'),
          h('td', {}, when(s.created_at * 1000)), h('td', {}, when(s.last_seen * 1000))))))),
      h('p', { class: 'muted' }, 'Recent pushes per person are not shown: the server does not keep a per-person history yet.'),
      eraseArea));
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    fill(result);
    try {
      show(await api.profile(externalId.value.trim()));
    } catch (error) {
      showError(form, error.field ? error : Object.assign(error, { field: 'external_id' }));
    }
  });
  externalId.focus();
}
