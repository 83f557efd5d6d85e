// The Aviso Console: sign-in with an API key, then one page per hash route
// (#/overview, #/compose, #/n/ID, #/profiles, #/settings). Each page is a function that fills
// `main` and returns an optional `stop()` (the detail page's live sampling).
import { api, session } from './api.js';
import { fill, field, generalError, h, showError, clearErrors } from './dom.js';
import { overview } from './pages/overview.js';
import { compose } from './pages/compose.js';
import { detail } from './pages/detail.js';
import { profiles } from './pages/profiles.js';
import { settings } from './pages/settings.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
let app = null;
let stopPage = null;

const ROUTES = [
  [/^#\/overview$/, overview, 'Overview'],
  [/^#\/compose$/, compose, 'Compose'],
  [/^#\/n\/([0-9a-zA-Z]+)$/, detail, 'Notification'],
  [/^#\/profiles$/, profiles, 'Profiles'],
  [/^#\/settings$/, settings, 'Settings'],
];

function signIn(message) {
  nav.hidden = true;
  fill(who);
  const key = h('input', { type: 'password', autocomplete: 'off', spellcheck: 'false', required: true });
  const form = h('form', { class: 'card narrow', novalidate: true },
    h('h1', {}, 'Sign in'),
    h('p', {}, 'Use an API key of your app: a ', h('code', {}, 'read'), ' key shows, a ', h('code', {}, 'send'),
      ' key also sends, an ', h('code', {}, 'admin'), ' key also changes the app\'s settings. The key stays in this tab only (sessionStorage).'),
    field('API key', key, { field: 'key' }),
    generalError(),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    try {
      app = await api.app(key.value.trim());
      session.set(key.value.trim());
      location.hash = '#/overview';
      route();
    } catch (error) {
      showError(form, Object.assign(error, { field: 'key' }));
    }
  });
  fill(main, form, message && h('p', { class: 'notice', role: 'status' }, message));
  key.focus();
}

function signOut() {
  session.clear();
  app = null;
  signIn('Signed out.');
}

function showWho() {
  fill(who, h('span', {}, app.name, ' ', h('span', { class: 'muted' }, `(${app.app_id}, ${app.scope} key)`)),
    h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'));
}

async function route() {
  stopPage?.();
  stopPage = null;
  if (!session.key()) return signIn();
  if (!app) {
    try {
      app = await api.app();
    } catch (error) {
      session.clear();
      return signIn(error.status === 401 ? 'The key no longer works: sign in again.' : error.message);
    }
  }
  nav.hidden = false;
  showWho();
  const hash = location.hash || '#/overview';
  const found = ROUTES.map(([pattern, page, title]) => [pattern.exec(hash), page, title]).find(([match]) => match);
  if (!found) {
    location.replace('#/overview');
    return undefined;
  }
  const [match, page, title] = found;
  for (const link of nav.querySelectorAll('a')) {
    if (hash.startsWith(link.getAttribute('href'))) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${title} · Aviso Console`;
  main.replaceChildren();
  stopPage = await page(main, { app, param: match[1], setApp: (next) => { app = { ...app, ...next }; showWho(); } }) || null;
  // The page's heading takes the focus, so that keyboard and screen-reader users start there.
  const heading = main.querySelector('h1');
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
  return undefined;
}

addEventListener('hashchange', route);
route();
