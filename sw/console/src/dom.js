import { fieldPaths } from './format.js';

// A few DOM helpers: elements from a tag, properties and children; form fields with a label and
// an error slot the API's messages go to (by the API's field name).

/** `h('p', {class: 'x'}, 'text', child)`; `on*` properties become listeners. */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name === 'class') element.className = value;
    else if (name in element && typeof value !== 'string') element[name] = value;
    else element.setAttribute(name, value === true ? '' : value);
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

/** Empties `element` and fills it with `children`. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

let ids = 0;
const nextId = (prefix) => `${prefix}-${(ids += 1)}`;

/**
 * A labelled control and its error slot. `field` is the API's name for it (`content.body`):
 * errors for that field show under it. Returns the wrapper; the control is `.control`.
 */
export function field(label, control, { field: apiField, hint } = {}) {
  const id = control.id || nextId('f');
  control.id = id;
  const error = h('p', { class: 'error', id: `${id}-error`, role: 'alert', hidden: true });
  const described = [hint && `${id}-hint`, `${id}-error`].filter(Boolean).join(' ');
  control.setAttribute('aria-describedby', described);
  const wrapper = h('div', { class: 'field', 'data-field': apiField || null },
    h('label', { for: id }, label),
    hint && h('p', { class: 'hint', id: `${id}-hint` }, hint),
    control,
    error);
  wrapper.control = control;
  return wrapper;
}

/** Clears every error shown inside `root`. */
export function clearErrors(root) {
  for (const error of root.querySelectorAll('.error')) {
    error.hidden = true;
    error.textContent = '';
  }
  for (const invalid of root.querySelectorAll('[aria-invalid]')) invalid.removeAttribute('aria-invalid');
}

/**
 * Shows an API error inside `root`: under the field it names (the closest match of the API's
 * field path: `content.actions[0].url`, then `content.actions[0]`, `content.actions`,
 * `content`), or in the form's general slot (`[data-field="*"]`).
 */
export function showError(root, error) {
  const wrapper = fieldPaths(error.field || '').map((name) => root.querySelector(`[data-field="${CSS.escape(name)}"]`)).find(Boolean)
    || root.querySelector('[data-field="*"]');
  if (!wrapper) throw error;
  const slot = wrapper.querySelector(':scope > .error') || wrapper.querySelector('.error');
  slot.textContent = error.field && !wrapper.matches(`[data-field="${CSS.escape(error.field)}"]`) ? `${error.field}: ${error.message}` : error.message;
  slot.hidden = false;
  const control = wrapper.control || wrapper.querySelector('input, select, textarea, button');
  if (control && wrapper.dataset.field !== '*') {
    control.setAttribute('aria-invalid', 'true');
    control.focus();
  }
}

/** A general error slot for a form or a section (errors without a field of their own). */
export function generalError() {
  return h('div', { 'data-field': '*' }, h('p', { class: 'error', role: 'alert', hidden: true }));
}
