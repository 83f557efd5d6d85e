// The npm `web-push` package as a peer: sends one payload to every subscription of a JSON-lines
// file, `concurrency` at a time, the way a hand-rolled sender around the library would
// (`webpush.sendNotification` per subscriber, VAPID details set once, a keep-alive agent), and
// prints what it cost: `{"messages", "created", "failed", "wall_s", "cpu_s"}` on one line.
//
//   node web-push-send.mjs SUBSCRIPTIONS.jsonl CA.pem PAYLOAD [CONCURRENCY]
//
// Run by examples/broadcast_load.rs --peer, against the same loopback push service as Aviso.
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import webpush from 'web-push';

const [file, caFile, payload, concurrencyArg = '64'] = process.argv.slice(2);
if (!file || !caFile || payload === undefined) {
  console.error('usage: node web-push-send.mjs SUBSCRIPTIONS.jsonl CA.pem PAYLOAD [CONCURRENCY]');
  process.exit(2);
}
const concurrency = Number.parseInt(concurrencyArg, 10);
if (!(concurrency > 0)) {
  console.error(`concurrency must be a positive integer, not ${concurrencyArg}`);
  process.exit(2);
}
const subscriptions = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
const vapid = webpush.generateVAPIDKeys();
webpush.setVapidDetails('mailto:ops@example.com', vapid.publicKey, vapid.privateKey);
const agent = new Agent({ keepAlive: true, maxSockets: concurrency, ca: readFileSync(caFile) });

const cpuBefore = process.cpuUsage();
const started = process.hrtime.bigint();
let next = 0;
let created = 0;
const failures = new Map();
async function worker() {
  while (next < subscriptions.length) {
    const subscription = subscriptions[next++];
    try {
      const answer = await webpush.sendNotification(subscription, payload, { TTL: 3600, agent, timeout: 30_000 });
      if (answer.statusCode === 201) created += 1;
    } catch (error) {
      const reason = error.statusCode ? `status ${error.statusCode}` : String(error.code || error.message);
      failures.set(reason, (failures.get(reason) || 0) + 1);
    }
  }
}
await Promise.all(Array.from({ length: concurrency }, worker));
const wall = Number(process.hrtime.bigint() - started) / 1e9;
const cpu = process.cpuUsage(cpuBefore);
agent.destroy();
const failed = [...failures.values()].reduce((a, b) => a + b, 0);
console.log(JSON.stringify({
  messages: subscriptions.length,
  created,
  failed,
  failures: Object.fromEntries(failures),
  wall_s: wall,
  cpu_s: (cpu.user + cpu.system) / 1e6,
}));
