// A real `aviso serve` and the project's mock push service for the console's browser tests and
// screenshots: processes on free loopback ports with a fresh data dir, subscribers whose keys
// the test makes (the mock decrypts what is sent to each), and the public and private API.
//
// Needs the binaries: `cargo build --bin aviso --bin aviso-mock-push` at the repository root
// (or AVISO_BIN / AVISO_MOCK_PUSH_BIN).
import { spawn } from 'node:child_process';
import { createECDH, createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
const AVISO_BIN = process.env.AVISO_BIN || join(REPO, 'target', 'debug', 'aviso');
const MOCK_PUSH_BIN = process.env.AVISO_MOCK_PUSH_BIN || join(REPO, 'target', 'debug', 'aviso-mock-push');
const STARTUP_MS = 60_000;

/**
 * Starts `bin`, reading its stdout lines with `read(line, found)` until `found` has each of
 * `wanted`; `stop()` ends it (SIGTERM, then SIGKILL after 10 s).
 */
export async function startProcess(bin, args, env, wanted, read) {
  if (!existsSync(bin)) throw new Error(`no binary at ${bin}: run \`cargo build --bin aviso --bin aviso-mock-push\` in ${REPO}`);
  const child = spawn(bin, args, { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const output = [];
  const found = {};
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  createInterface({ input: child.stderr }).on('line', (line) => output.push(line));
  const ready = new Promise((resolve) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      output.push(line);
      read(line, found);
      if (wanted.every((key) => found[key])) resolve();
    });
  });
  let timer;
  const outcome = await Promise.race([
    ready.then(() => 'ready'),
    exited.then(({ code, signal }) => `exited (code ${code}, signal ${signal})`),
    new Promise((resolve) => { timer = setTimeout(() => resolve(`not ready within ${STARTUP_MS / 1000} s`), STARTUP_MS); }),
  ]);
  clearTimeout(timer);
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    let killTimer;
    const stopped = await Promise.race([exited.then(() => true), new Promise((resolve) => { killTimer = setTimeout(() => resolve(false), 10_000); })]);
    clearTimeout(killTimer);
    if (!stopped) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  if (outcome !== 'ready') {
    await stop();
    throw new Error(`${bin} ${outcome}; it printed:\n${output.join('\n')}`);
  }
  return { ...found, output, stop };
}

/** A browser's push keys made here: the subscription JSON, and the private key the mock decrypts with. */
function makeSubscriber(id) {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const keys = { p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') };
  // The scalar as 32 bytes, as the mock's keys file wants it (Node may drop leading zeros).
  const privateKey = Buffer.concat([Buffer.alloc(32), ecdh.getPrivateKey()]).subarray(-32).toString('base64url');
  return { id, keys, privateKey };
}

/**
 * The mock push service and `aviso serve` (API and sender, embedded store) with `count`
 * subscribers' keys registered at the mock. `stop()` ends both and removes the data.
 */
export async function startServers(count) {
  const dir = mkdtempSync(join(tmpdir(), 'aviso-console-'));
  const subscribers = Array.from({ length: count }, (_, i) => makeSubscriber(`browser-${i + 1}`));
  const keysFile = join(dir, 'keys.jsonl');
  const caFile = join(dir, 'ca.pem');
  writeFileSync(keysFile, subscribers.map((s) => JSON.stringify({ id: s.id, private_key: s.privateKey, ...s.keys })).join('\n') + '\n');
  const mock = await startProcess(MOCK_PUSH_BIN,
    ['--listen', '127.0.0.1:0', '--ca-out', caFile, '--verify-keys', keysFile, '--record-details'], {}, ['origin'],
    (line, found) => {
      const listening = /^listening: (https:\/\/127\.0\.0\.1:\d+)\s*$/.exec(line);
      if (listening) found.origin = listening[1];
    });
  let aviso;
  try {
    aviso = await startProcess(AVISO_BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', join(dir, 'data')], {
      AVISO_SDK_DIR: join(REPO, 'sw'),
      AVISO_ALLOWED_PUSH_HOSTS: new URL(mock.origin).host,
      AVISO_EXTRA_CA_CERTS: caFile,
      AVISO_PUBLIC_RATE_LIMIT: '100000',
      AVISO_ROLE: 'all',
    }, ['origin', 'app_id', 'api_key', 'admin_key', 'identity_secret', 'console'], (line, found) => {
      const field = /^\s*(app_id|api_key|admin_key|identity_secret):\s+(\S+)\s*$/.exec(line);
      if (field) found[field[1]] = field[2];
      const listening = /^listening: (http:\/\/127\.0\.0\.1:\d+)\s*$/.exec(line);
      if (listening) found.origin = listening[1];
      const console = /^console:\s+(\S+)\s*$/.exec(line);
      if (console) found.console = console[1];
    });
  } catch (error) {
    await mock.stop();
    throw error;
  }
  const ca = readFileSync(caFile);
  const endpoint = (subscriber) => `${mock.origin}/push/${subscriber.id}`;

  /** The server's API with `key` (default: the default app's send key): `{status, body}`. */
  async function api(method, path, body, key = aviso.api_key) {
    const response = await fetch(`${aviso.origin}${path}`, {
      method,
      headers: { ...(key && { Authorization: `Bearer ${key}` }), ...(body && { 'Content-Type': 'application/json' }) },
      body: body && JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    let json = text;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: response.status, body: json };
  }

  /** Subscribes `subscriber` through the public API, as the widget would; its subscription id. */
  async function subscribe(subscriber, { locale = 'en-US', tags = {}, externalId } = {}) {
    const body = { subscription: { endpoint: endpoint(subscriber), keys: subscriber.keys }, locale, timezone: 'Europe/Lisbon', tags };
    if (externalId) {
      body.external_id = externalId;
      body.identity_hash = createHmac('sha256', Buffer.from(aviso.identity_secret, 'hex')).update(externalId).digest('hex');
    }
    const answer = await api('POST', `/v1/apps/${aviso.app_id}/subscriptions`, body, null);
    if (answer.status !== 201) throw new Error(`subscribing ${subscriber.id} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    return answer.body.subscription_id;
  }

  /** What the mock accepted for `subscriber` and decrypted: `[{ttl, urgency, topic, plaintext}]`. */
  function messages(subscriber) {
    return new Promise((resolve, reject) => {
      const request = httpsGet(`${mock.origin}/messages/${subscriber.id}`, { ca, timeout: 10_000 }, (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk) => { text += chunk; });
        response.on('end', () => {
          if (response.statusCode !== 200) return reject(new Error(`GET /messages answered ${response.statusCode}: ${text}`));
          try { return resolve(JSON.parse(text)); } catch (error) { return reject(error); }
        });
      });
      request.on('timeout', () => request.destroy(new Error('GET /messages timed out')));
      request.on('error', reject);
    });
  }

  async function stop() {
    await aviso.stop();
    await mock.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  return { aviso, mock, subscribers, api, subscribe, messages, stop };
}
