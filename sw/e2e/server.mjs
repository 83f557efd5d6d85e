// A tiny loopback server for the browser tests: serves demo/ at / and dist/ at /sdk/ (as
// `aviso serve` does), a test page that passes its query to Aviso.init, and plays the public
// API (docs/PUBLIC-API.md) far enough for the widget and the worker, recording every call.
import { createECDH } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';

const root = new URL('..', import.meta.url);
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8' };

/** Starts the server on a free loopback port; resolves to `{origin, calls, vapidPublicKey, close()}`. */
export async function startServer() {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const vapidPublicKey = ecdh.getPublicKey().toString('base64url');
  const calls = [];

  const server = createServer(async (request, response) => {
    const url = new URL(request.url, 'http://127.0.0.1');
    let body = '';
    for await (const chunk of request) body += chunk;
    const send = (status, data, type = 'application/json') => {
      response.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
      response.end(data === undefined ? undefined : typeof data === 'string' || Buffer.isBuffer(data) ? data : JSON.stringify(data));
    };
    const api = /^\/v1\/apps\/([^/]+)(\/.*)$/.exec(url.pathname);
    if (api) {
      calls.push({ method: request.method, app: api[1], path: api[2], body: body ? JSON.parse(body) : undefined });
      if (api[2] === '/vapid-public-key') return send(200, { vapid_public_key: vapidPublicKey });
      if (api[2] === '/subscriptions') return send(201, { subscription_id: '00000000000000a1' });
      return send(204);
    }
    const file = url.pathname === '/' ? 'demo/index.html'
      : url.pathname === '/page.html' ? 'e2e/page.html'
        : url.pathname.startsWith('/sdk/') ? `dist/${url.pathname.slice(5)}` : null;
    if (!file || file.includes('..')) return send(404, 'not found', 'text/plain');
    try {
      const data = await readFile(new URL(file, root));
      return send(200, data, TYPES[file.slice(file.lastIndexOf('.'))] || 'application/octet-stream');
    } catch {
      return send(404, 'not found', 'text/plain');
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    origin: `http://127.0.0.1:${port}`,
    calls,
    vapidPublicKey,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(resolve);
    }),
  };
}
