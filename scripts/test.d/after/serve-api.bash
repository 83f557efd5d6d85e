# Sourced by the after-suites that test the API over HTTP (schemathesis.sh, crm-guide.sh):
# builds and starts `aviso serve --role api` on a free loopback port with a fresh data
# directory, stopped and removed when the sourcing script exits. `--role api`: the sender is
# not started, so nothing a test creates is pushed or posted anywhere. Extra environment for
# the server may be given before sourcing it (`AVISO_PUBLIC_RATE_LIMIT=… source …`).
#
# Sets `work` (a temporary directory for the caller too), `base` (the server's URL) and
# `serve_field NAME` (a value it printed on its first start: app_id, api_key, admin_key, …).

cargo build --quiet --bin aviso
work=$(mktemp -d)
serve_out="$work/serve.out"
AVISO_LOG=warn target/debug/aviso serve --role api --listen 127.0.0.1:0 --data-dir "$work/data" >"$serve_out" &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  grep -q '^listening:' "$serve_out" 2>/dev/null && break
  sleep 0.1
done
serve_field() { awk -v k="$1:" '$1 == k {print $2; exit}' "$serve_out"; }
base=$(serve_field listening)
[ -n "$base" ] && [ -n "$(serve_field api_key)" ] || {
  echo "aviso serve did not start"
  cat "$serve_out"
  exit 1
}
