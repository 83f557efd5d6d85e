// Compose: content with a live preview, audience (everyone, a segment built visually with its
// estimated reach, external ids), when, TTL and urgency; errors from the API under their field.
import { api } from '../api.js';
import { clearErrors, field, fill, generalError, h, showError } from '../dom.js';
import { MAX_ACTIONS, TTL_CHOICES, URGENCIES, toAudience, toRequest } from '../compose.js';
import { ATTRIBUTE_OPS, TAG_OPS, emptyCondition, emptySegment, needsValue } from '../segment.js';
import { count } from '../format.js';

const input = (props = {}) => h('input', { type: 'text', ...props });
const options = (pairs, selected) => pairs.map(([value, label]) => h('option', { value, selected: value === selected }, label));

function preview(values, host) {
  const safe = (url) => (/^https?:\/\//i.test(url || '') ? url : null);
  const icon = safe(values.icon);
  const image = safe(values.image);
  const actions = values.actions.filter((a) => a.title.trim());
  return h('div', { class: 'preview' },
    h('div', { class: 'preview-head' },
      icon ? h('img', { src: icon, alt: '', class: 'preview-icon' }) : h('span', { class: 'preview-icon blank', 'aria-hidden': 'true' }),
      h('div', {}, h('p', { class: 'preview-title' }, values.title || 'Title'), h('p', { class: 'preview-body' }, values.body || 'Body text'),
        h('p', { class: 'preview-host muted' }, host))),
    image && h('img', { src: image, alt: '', class: 'preview-image' }),
    actions.length > 0 && h('div', { class: 'preview-actions' }, actions.map((a) => h('span', {}, a.title))));
}

function segmentBuilder(segment, changed) {
  const root = h('fieldset', { class: 'segment' }, h('legend', {}, 'Segment'));
  function render() {
    const match = h('select', { onchange: (e) => { segment.match = e.target.value; changed(); } },
      ...options([['all', 'all'], ['any', 'any']], segment.match));
    const rows = segment.conditions.map((condition, i) => {
      const kind = h('select', { onchange: (e) => { condition.kind = e.target.value; condition.op = condition.kind === 'tag' ? 'is' : 'eq'; render(); changed(); } },
        ...options([['tag', 'Tag'], ['attribute', 'Attribute']], condition.kind));
      const key = input({ value: condition.key, placeholder: condition.kind === 'tag' ? 'plan' : 'age', oninput: (e) => { condition.key = e.target.value; changed(); } });
      const op = h('select', { onchange: (e) => { condition.op = e.target.value; render(); changed(); } },
        ...options(condition.kind === 'tag' ? TAG_OPS : ATTRIBUTE_OPS, condition.op));
      const parts = [field('Kind', kind), field('Name', key), field('Condition', op)];
      if (needsValue(condition)) {
        parts.push(field('Value', input({ value: condition.value, oninput: (e) => { condition.value = e.target.value; changed(); } })));
        if (condition.kind === 'attribute') {
          parts.push(field('Type', h('select', { onchange: (e) => { condition.type = e.target.value; changed(); } },
            ...options([['text', 'text'], ['number', 'number'], ['boolean', 'true/false']], condition.type))));
        }
      }
      const remove = segment.conditions.length > 1 && h('button', { type: 'button', class: 'link', onclick: () => { segment.conditions.splice(i, 1); render(); changed(); } }, `Remove condition ${i + 1}`);
      return h('div', { class: 'condition', role: 'group', 'aria-label': `Condition ${i + 1}` }, parts, remove);
    });
    fill(root, h('legend', {}, 'Segment'),
      h('div', { class: 'inline' }, field('Subscribers matching', match), h('span', { class: 'muted' }, 'of these conditions')),
      rows,
      h('button', { type: 'button', onclick: () => { segment.conditions.push(emptyCondition()); render(); changed(); } }, 'Add a condition'));
  }
  render();
  return root;
}

export async function compose(main, { app }) {
  const values = {
    title: '', body: '', icon: '', image: '', url: '',
    actions: [{ title: '', url: '' }, { title: '', url: '' }],
    audience: 'all', segment: emptySegment(), externalIds: '',
    when: 'now', sendAt: '', ttl: '', urgency: '',
  };
  const host = app.origins[0] ? new URL(app.origins[0]).host : location.host;
  const previewArea = h('div', { class: 'preview-area', 'aria-live': 'polite' });
  const reach = h('p', { class: 'reach', 'aria-live': 'polite' });
  let estimateTimer = null;
  let estimateRun = 0;

  const form = h('form', { class: 'compose', novalidate: true });
  const bind = (name, control) => {
    control.value = values[name];
    control.addEventListener('input', () => { values[name] = control.value; refresh(); });
    return control;
  };

  function refresh() {
    fill(previewArea, preview(values, host));
  }

  async function estimate() {
    const run = (estimateRun += 1);
    clearErrors(audienceSet);
    reach.textContent = 'Estimating…';
    try {
      const result = await api.estimate(toAudience(values));
      if (run !== estimateRun) return;
      reach.textContent = `Estimated reach: ${result.exact ? '' : '≈ '}${count(result.reach)} subscription${result.reach === 1 ? '' : 's'}`
        + (result.exact ? '' : ` (from a sample of ${count(result.scanned)})`);
    } catch (error) {
      if (run !== estimateRun) return;
      reach.textContent = '';
      showError(audienceSet, error);
    }
  }
  const estimateSoon = () => {
    clearTimeout(estimateTimer);
    estimateTimer = setTimeout(estimate, 400);
  };

  const actionFields = values.actions.slice(0, MAX_ACTIONS).map((action, i) => h('fieldset', { class: 'action', 'data-field': `content.actions[${i}]` },
    h('legend', {}, `Button ${i + 1} (optional)`),
    field('Label', input({ value: '', oninput: (e) => { action.title = e.target.value; refresh(); } }), { field: `content.actions[${i}].title` }),
    field('Opens URL', input({ type: 'url', placeholder: 'https://…', oninput: (e) => { action.url = e.target.value; } }), { field: `content.actions[${i}].url` }),
    h('p', { class: 'error', role: 'alert', hidden: true })));

  const segmentArea = h('div', { hidden: true }, segmentBuilder(values.segment, estimateSoon));
  const idsArea = h('div', { hidden: true }, field('External ids (one per line)',
    h('textarea', { rows: 3, oninput: (e) => { values.externalIds = e.target.value; estimateSoon(); } }), { field: 'audience.external_ids' }));
  const audienceChoice = (value, label) => h('label', { class: 'choice' },
    h('input', { type: 'radio', name: 'audience', value, checked: value === 'all', onchange: () => {
      values.audience = value;
      segmentArea.hidden = value !== 'segment';
      idsArea.hidden = value !== 'external_ids';
      estimateSoon();
    } }), label);
  const audienceSet = h('fieldset', { 'data-field': 'audience' }, h('legend', {}, 'Audience'),
    h('div', { class: 'choices' }, audienceChoice('all', 'Everyone'), audienceChoice('segment', 'A segment'), audienceChoice('external_ids', 'Profiles by external id')),
    h('div', { 'data-field': 'audience.segment' }, segmentArea, h('p', { class: 'error', role: 'alert', hidden: true })),
    idsArea, reach, h('p', { class: 'error', role: 'alert', hidden: true }));

  const sendAt = h('input', { type: 'datetime-local', disabled: true, oninput: (e) => { values.sendAt = e.target.value; } });
  const whenChoice = (value, label) => h('label', { class: 'choice' },
    h('input', { type: 'radio', name: 'when', value, checked: value === 'now', onchange: () => { values.when = value; sendAt.disabled = value !== 'at'; } }), label);
  const whenSet = h('fieldset', {}, h('legend', {}, 'When'),
    h('div', { class: 'choices' }, whenChoice('now', 'Now'), whenChoice('at', 'At a time')),
    field('Send at (your local time)', sendAt, { field: 'send_at' }));

  const ttl = h('select', { onchange: (e) => { values.ttl = e.target.value; } }, h('option', { value: '' }, 'default (4 weeks)'), ...options(TTL_CHOICES.slice(0, 3), ''));
  const urgency = h('select', { onchange: (e) => { values.urgency = e.target.value; } }, ...URGENCIES.map((u) => h('option', { value: u }, u || 'default (normal)')));
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Send');
  const status = h('p', { role: 'status' });

  fill(form,
    h('div', { class: 'compose-grid' },
      h('div', {},
        h('fieldset', {}, h('legend', {}, 'Message'),
          field('Title', bind('title', input({ required: true })), { field: 'content.title' }),
          h('div', { class: 'field', 'data-field': 'content' },
            field('Body', bind('body', h('textarea', { rows: 3 })), { field: 'content.body' }),
            h('p', { class: 'error', role: 'alert', hidden: true })),
          field('Icon URL', bind('icon', input({ type: 'url', placeholder: 'https://…' })), { field: 'content.icon' }),
          field('Image URL', bind('image', input({ type: 'url', placeholder: 'https://…' })), { field: 'content.image' }),
          field('Opens URL when clicked', bind('url', input({ type: 'url', placeholder: 'https://…' })), { field: 'content.url' }),
          actionFields),
        audienceSet,
        whenSet,
        h('fieldset', {}, h('legend', {}, 'Delivery'),
          field('Keep for offline browsers (TTL)', ttl, { field: 'ttl' }),
          field('Urgency', urgency, { field: 'urgency' })),
        generalError(),
        h('div', { class: 'buttons' }, submit), status),
      h('aside', { class: 'preview-side', 'aria-label': 'Preview' }, h('h2', {}, 'Preview'), previewArea,
        h('p', { class: 'muted' }, 'Browsers and systems draw notifications their own way; this is an approximation.'))));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    submit.disabled = true;
    status.textContent = 'Sending…';
    try {
      const created = await api.create(toRequest(values));
      status.textContent = 'Created.';
      location.hash = `#/n/${created.id}`;
    } catch (error) {
      status.textContent = '';
      showError(form, error);
    } finally {
      submit.disabled = false;
    }
  });

  fill(main, h('h1', {}, 'Compose'), form);
  refresh();
  estimate();
  return () => clearTimeout(estimateTimer);
}
