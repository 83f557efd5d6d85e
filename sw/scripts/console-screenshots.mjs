// Screenshots of every console page, light and dark, for docs/console/ (`npm run screenshots`).
// Starts a real `aviso serve` and the mock push service (e2e/aviso.mjs), makes a few
// subscribers and notifications through the API, then drives the console in headless Chromium.
// Needs `cargo build --bin aviso --bin aviso-mock-push` first.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { launch } from '../e2e/browser.mjs';
import { until } from '../e2e/wait.mjs';
import { REPO, startServers } from '../e2e/aviso.mjs';

const OUT = join(REPO, 'docs', 'console');
const servers = await startServers(5);
const browser = await launch({ viewport: { width: 1280, height: 860 } });
try {
  const [a, b, c, d, e] = servers.subscribers;
  await servers.subscribe(a, { locale: 'pt-BR', tags: { plan: 'pro' }, externalId: 'crm-42' });
  await servers.subscribe(b, { locale: 'en-US', tags: { plan: 'free' } });
  await servers.subscribe(c, { locale: 'en-GB' });
  await servers.subscribe(d, { locale: 'de-DE', tags: { plan: 'pro' } });
  await servers.subscribe(e, { locale: 'fr-FR' });
  const { aviso } = servers;
  await servers.api('PUT', '/v1/profiles/crm-42', { attributes: { first_name: 'Ana', orders: 7, member: true }, tags: { city: 'Lisbon' } });
  const image = `${aviso.origin}/console/icon.svg`;
  const sale = await servers.api('POST', '/v1/notifications', {
    audience: 'all',
    content: { title: 'Summer sale', body: 'Everything 20% off until Sunday', image, url: `${aviso.origin}/?from=sale`, actions: [{ action: 'shop', title: 'Shop now' }] },
  });
  await servers.api('POST', '/v1/notifications', { audience: { segment: { tag: { key: 'plan', value: 'pro' } } }, content: { title: 'New in Pro: reports' }, send_at: `${new Date().getFullYear() + 1}-01-15T09:30:00Z` });
  await until(async () => (await servers.api('GET', `/v1/notifications/${sale.body.id}`)).body.counters.delivered === 5, 'the sale delivered', { timeoutMs: 30_000 });

  const page = await browser.context.newPage();
  mkdirSync(OUT, { recursive: true });
  const shoot = async (name) => {
    for (const colorScheme of ['light', 'dark']) {
      await page.emulateMedia({ colorScheme });
      await page.screenshot({ path: join(OUT, `${name}-${colorScheme}.png`), fullPage: true });
    }
    await page.emulateMedia({ colorScheme: 'light' });
    console.log(`docs/console/${name}-{light,dark}.png`);
  };

  await page.goto(aviso.console);
  await page.getByLabel('API key').waitFor();
  await shoot('sign-in');
  await page.getByLabel('API key').fill(aviso.admin_key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await until(async () => (await page.getByTestId('total').textContent().catch(() => '')) === '5', 'the overview');
  await shoot('overview');

  await page.getByRole('link', { name: 'Compose' }).click();
  await page.getByLabel('Title').fill('Your cart misses you');
  await page.getByLabel('Body').fill('The shoes you picked are still there, in your size.');
  await page.getByLabel('Icon URL').fill(image);
  await page.getByLabel('Image URL').fill(image);
  await page.getByRole('group', { name: 'Button 1 (optional)' }).getByLabel('Label').fill('See my cart');
  await page.getByLabel('A segment').check();
  const condition = page.getByRole('group', { name: 'Condition 1' });
  await condition.getByLabel('Name').fill('plan');
  await condition.getByLabel('Value').fill('pro');
  await until(async () => /Estimated reach: 2/.test(await page.locator('.reach').textContent()), 'the reach');
  await shoot('compose');

  await page.goto(`${aviso.console}#/n/${sale.body.id}`);
  await page.getByRole('heading', { name: 'Summer sale', level: 1 }).waitFor();
  await page.waitForTimeout(5000);
  await shoot('notification');

  await page.getByRole('link', { name: 'Profiles' }).click();
  await page.getByLabel('External id').fill('crm-42');
  await page.getByRole('button', { name: 'Look up' }).click();
  await page.getByRole('heading', { name: 'crm-42' }).waitFor();
  await shoot('profiles');

  await page.getByRole('link', { name: 'Settings' }).click();
  await page.getByRole('heading', { name: 'Settings', level: 1 }).waitFor();
  await shoot('settings');
} finally {
  await browser.close();
  await servers.stop();
}
