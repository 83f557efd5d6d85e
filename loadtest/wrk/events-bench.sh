#!/usr/bin/env bash
# Events accepted per second by `POST /v1/events` (wrk, loadtest/wrk/events.lua) and how late
# the pending sends they scheduled were made while that load ran, for one store.
#
#   cargo build --release
#   loadtest/wrk/events-bench.sh embedded 20     # or: redis 20 (starts its own redis-server)
#
# Every event is for a new person and cart, and schedules one send of a `cart_abandoned`
# trigger with a 2 s delay, so sends come due while wrk is still posting. Lateness is the
# server's own `aviso_trigger_lateness_seconds` histogram (due time to the push made), read
# from `/metrics` after the last send is due: its p50 and p99 are given as bucket bounds.
# The people have no profile, so each push is made and reaches nobody: this measures the
# trigger path (event in, durable pending send, claim, notification), not delivery.
set -euo pipefail

store=${1:-embedded}
seconds=${2:-20}
bin=${AVISO_BIN:-target/release/aviso}
[ -x "$bin" ] || { echo "no $bin: run cargo build --release first" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)

dir=$(mktemp -d)
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [ "$store" = redis ]; then
    redis_port=$(free_port)
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$dir" >"$dir/redis.log" 2>&1 &
    for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    export AVISO_REDIS_URL=redis://127.0.0.1:$redis_port
elif [ "$store" != embedded ]; then
    echo "store: embedded or redis, not $store" >&2
    exit 2
fi

port=$(free_port)
AVISO_LOG=warn "$bin" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" >"$dir/out" 2>"$dir/err" &
for _ in $(seq 100); do grep -q '^ *listening' "$dir/out" 2>/dev/null && break; sleep 0.1; done
grep -q '^ *listening' "$dir/out" || { cat "$dir/err" >&2; exit 1; }
base=http://127.0.0.1:$port
api_key=$(sed -n 's/^ *api_key: *\([^ ]*\).*/\1/p' "$dir/out")

curl -sf -X PUT "$base/v1/triggers/cart" -H "authorization: Bearer $api_key" \
    -H 'content-type: application/json' \
    -d '{"event":"cart_abandoned","delay_secs":2,"cancel_on":["purchase"],"content":{"title":"Your cart","body":"{{ event.items }} items, {{ event.total }}"}}' \
    >/dev/null

AVISO_API_KEY=$api_key wrk -t2 -c32 -d"${seconds}s" --latency -s "$here/events.lua" "$base/v1/events" |
    tee "$dir/wrk"
# The last sends come due 2 s after the load; give the runner time to make them.
sleep 6

counters=$(curl -sf "$base/v1/triggers/cart" -H "authorization: Bearer $api_key" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["counters"])')
curl -sf "$base/metrics" >"$dir/metrics"
python3 - "$dir/metrics" "$dir/wrk" "$store" "$counters" <<'EOF'
import re, sys
metrics, wrk, store, counters = sys.argv[1:5]
buckets = []
for line in open(metrics):
    m = re.match(r'aviso_trigger_lateness_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
    if m:
        buckets.append((float("inf") if m[1] == "+Inf" else float(m[1]), float(m[2])))
buckets.sort()
total = buckets[-1][1] if buckets else 0
def quantile(q):
    for le, count in buckets:
        if count >= q * total:
            return le
    return float("nan")
rate = re.search(r"Requests/sec:\s+(\S+)", open(wrk).read())[1]
print(f"{store}: {float(rate):,.0f} events/s accepted; {total:,.0f} sends made; "
      f"lateness p50 <= {quantile(0.5)} s, p99 <= {quantile(0.99)} s; trigger counters {counters}")
EOF
