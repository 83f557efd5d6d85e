// Settings: the app's origins and demo switch (editable with an admin key), its VAPID public
// key, its keys, and the widget snippet to paste into the site.
import { api } from '../api.js';
import { clearErrors, field, fill, generalError, h, showError } from '../dom.js';
import { when, widgetSnippet } from '../format.js';

function copyButton(text, label) {
  const status = h('span', { role: 'status', class: 'muted' });
  const button = h('button', { type: 'button' }, label);
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(text());
      status.textContent = 'Copied.';
    } catch {
      status.textContent = 'Copying is not allowed here: select the text and copy it.';
    }
  });
  return [button, status];
}

export async function settings(main, { app, setApp }) {
  const admin = app.scope === 'admin';
  const origins = h('textarea', { rows: 4, readOnly: !admin }, app.origins.join('\n'));
  const demo = h('input', { type: 'checkbox', checked: app.demo, disabled: !admin });
  const saved = h('p', { role: 'status' });
  const form = h('form', { class: 'card wide', novalidate: true },
    h('h2', {}, 'Where the widget may run'),
    field('Allowed origins (one per line)', origins, { field: 'origins', hint: 'The sites whose pages may subscribe visitors, e.g. https://shop.example. Changes hold at once.' }),
    h('div', { class: 'field', 'data-field': 'demo' }, h('label', { class: 'choice' }, demo, ' The demo page may send test pushes for this app'), h('p', { class: 'error', role: 'alert', hidden: true })),
    generalError(),
    admin ? h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Save'), saved)
      : h('p', { class: 'muted' }, 'Changing these needs an admin key (the one `aviso serve` printed at its first start).'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    saved.textContent = '';
    try {
      const list = origins.value.split('\n').map((o) => o.trim()).filter(Boolean);
      const updated = await api.updateApp(app.app_id, { origins: list, demo: demo.checked });
      origins.value = updated.origins.join('\n');
      setApp({ origins: updated.origins, demo: updated.demo });
      saved.textContent = 'Saved.';
    } catch (error) {
      // The API names `origins[2]`; the box holds them all.
      showError(form, error);
    }
  });

  const snippet = widgetSnippet(location.origin, app.app_id);
  fill(main, h('h1', {}, 'Settings'),
    h('section', { class: 'card wide' }, h('h2', {}, app.name),
      h('dl', { class: 'facts' },
        h('dt', {}, 'App id'), h('dd', {}, h('code', {}, app.app_id)),
        h('dt', {}, 'Created'), h('dd', {}, when(app.created_at * 1000)),
        h('dt', {}, 'VAPID public key'), h('dd', {}, h('code', { class: 'wrap', 'data-testid': 'vapid' }, app.vapid_public_key), ' ', copyButton(() => app.vapid_public_key, 'Copy the key')))),
    form,
    h('section', { class: 'card wide' }, h('h2', {}, 'Widget snippet'),
      h('p', {}, 'Paste this into your site\'s pages (and serve ', h('code', {}, 'aviso-sw.js'), ' from your site: see the SDK guide).'),
      h('pre', { tabindex: 0, 'aria-label': 'Widget snippet' }, h('code', {}, snippet)), copyButton(() => snippet, 'Copy the snippet')),
    h('section', { class: 'card wide' }, h('h2', {}, 'API keys'),
      h('p', { class: 'muted' }, 'Keys are shown once, when made (aviso apps issue-key / rotate-key); here are their ids.'),
      h('ul', {}, app.keys.map((k) => h('li', {}, h('code', {}, k.id), ` ${k.scope}`, k.expires_at_ms ? ` (stops ${when(k.expires_at_ms)})` : '')))));
}
