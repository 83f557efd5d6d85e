//! The soft prompt's markup: a card (title, text, buttons) at the bottom of the page, opened
//! directly (`banner`) or from a bell button (`bell`). Plain buttons with labels, a non-modal
//! dialog role, Escape to dismiss; the CSS is injected once and can be themed through the
//! `--aviso-accent` custom property.

const SHADOW = 'box-shadow:0 4px 20px #0004';
const CSS = `.aviso{position:fixed;z-index:2147483000;inset:auto 16px 16px;display:grid;justify-items:end;gap:8px;pointer-events:none;font:15px/1.4 system-ui,sans-serif}`
  + `.aviso>*{pointer-events:auto}`
  + `.aviso-card{max-width:360px;padding:16px;border-radius:12px;background:#fff;color:#222;${SHADOW}}`
  + `.aviso-card[hidden]{display:none}`
  + `.aviso p{margin:0 0 8px}.aviso-title{font-weight:600}.aviso-actions{text-align:end}`
  + `.aviso button{font:inherit;cursor:pointer;margin-inline-start:8px;padding:8px 14px;border-radius:8px;border:1px solid #0000;background:var(--aviso-accent,#1a66d6);color:#fff}`
  + `.aviso .aviso-later{background:none;color:inherit;border-color:currentColor}`
  + `.aviso .aviso-bell{padding:13px;border-radius:50%;line-height:0;${SHADOW}}`
  + `@media (prefers-color-scheme:dark){.aviso-card{background:#2c2c2e;color:#eee}}`;

const BELL = 'M12 22a2 2 0 0 0 2-2h-4a2 2 0 0 0 2 2m6-6v-5c0-3.1-1.6-5.6-4.5-6.3V4a1.5 1.5 0 0 0-3 0v.7C7.6 5.4 6 7.9 6 11v5l-2 2v1h16v-1z';

// Built node by node, never through innerHTML: pages that enforce Trusted Types refuse it.
function element(tag, className, text, attributes = {}, namespace) {
  const node = namespace ? document.createElementNS(namespace, tag) : document.createElement(tag);
  if (className) node.setAttribute('class', className);
  if (text) node.textContent = text;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function button(className, text, onClick, attributes) {
  const node = element('button', className, text, { type: 'button', ...attributes });
  node.addEventListener('click', onClick);
  return node;
}

/**
 * Shows the soft prompt and returns a function that removes it.
 * @param {object} options
 * @param {object} options.texts resolved texts (i18n.js)
 * @param {"push"|"ios-install"} options.kind what the prompt asks for
 * @param {"banner"|"bell"} options.style
 * @param {() => void} options.onAllow the visitor accepted (a click: the browser's prompt may follow)
 * @param {() => void} options.onDecline the visitor said no, closed it, or acknowledged the iOS hint
 */
export function showPrompt({ texts, kind, style, onAllow, onDecline }) {
  if (!document.getElementById('aviso-css')) {
    document.head.appendChild(element('style', '', CSS, { id: 'aviso-css' }));
  }
  const ios = kind === 'ios-install';
  const root = element('div', 'aviso');
  const card = element('div', 'aviso-card', '', {
    id: 'aviso-card',
    role: 'dialog',
    'aria-labelledby': 'aviso-title',
    'aria-describedby': 'aviso-body',
  });
  const title = element('p', 'aviso-title', ios ? texts.iosTitle : texts.title, { id: 'aviso-title' });
  const body = element('p', 'aviso-body', ios ? texts.iosBody : texts.body, { id: 'aviso-body' });
  const actions = element('div', 'aviso-actions');
  const remove = () => root.remove();
  const decline = () => {
    remove();
    onDecline();
  };
  const first = ios
    ? button('aviso-allow', texts.ok, decline)
    : button('aviso-allow', texts.allow, () => {
      remove();
      onAllow();
    });
  if (!ios) actions.append(button('aviso-later', texts.later, decline));
  actions.append(first);
  card.append(title, body, actions);
  card.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') decline();
  });
  root.append(card);

  if (style === 'bell') {
    card.hidden = true;
    const bell = button('aviso-bell', '', () => {
      card.hidden = !card.hidden;
      bell.setAttribute('aria-expanded', !card.hidden);
      if (!card.hidden) first.focus();
    }, { 'aria-label': texts.bell, 'aria-controls': card.id, 'aria-expanded': false });
    const svg = 'http://www.w3.org/2000/svg';
    const icon = element('svg', '', '', { viewBox: '0 0 24 24', width: 26, height: 26, 'aria-hidden': true }, svg);
    icon.append(element('path', '', '', { fill: 'currentColor', d: BELL }, svg));
    bell.append(icon);
    root.append(bell);
  }
  document.body.appendChild(root);
  return remove;
}
