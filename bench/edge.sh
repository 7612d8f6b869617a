#!/usr/bin/env bash
# VeloFlux's edge next to nginx, HAProxy and Caddy as reverse proxies, in one run.
#
#   bash bench/edge.sh            throughput and latency, one core and all cores
#   bash bench/edge.sh idle       memory held per idle keep-alive connection
#   bash bench/edge.sh https      throughput and latency with TLS to the proxy (all cores)
#
# Every proxy forwards to the same upstream (an nginx serving 1 KiB) with keep-alive to it;
# wrk drives each in alternating rounds and the table shows medians and ratios to VeloFlux.
# Peers are installed from Debian when missing. Ports are fixed (18080-18090) on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE="${1:-throughput}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
IDLE_CONNECTIONS="${IDLE_CONNECTIONS:-10000}"
WORK="$(mktemp -d)"
chmod 755 "$WORK"   # nginx workers run as an unprivileged user
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx || ! need haproxy || ! need caddy; then
  echo "installing wrk, nginx, haproxy and caddy from Debian..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx haproxy caddy >/dev/null
fi
cargo build --release --locked --quiet
VF="$PWD/target/release/veloflux"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

UPSTREAM=18080; NGINX=18081; HAPROXY=18082; CADDY=18083; VELOFLUX=18084; API=18085
VELOFLUX_TLS=18086; NGINX_TLS=18087; HAPROXY_TLS=18088; VF_HTTPS="off"; TLS_CONFIG=
head -c 1024 /dev/zero | tr '\0' 'x' > "$WORK/1k.txt"

start_nginx() { # name config-body workers cpuset
  local dir="$WORK/$1"; mkdir -p "$dir/logs"
  cat > "$dir/nginx.conf" <<NGINX
worker_processes $3;
pid $dir/nginx.pid;
error_log $dir/logs/error.log crit;
events { worker_connections 65536; }
http {
  access_log off;
  keepalive_requests 1000000;
  $2
}
NGINX
  taskset -c "$4" nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' &
  PIDS+=($!)
}

start_all() { # workers cpuset-of-the-proxies cpuset-of-the-upstream
  local workers="$1" cpus="$2" upstream_cpus="$3"
  start_nginx upstream "server { listen 127.0.0.1:$UPSTREAM; location / { root $WORK; try_files /1k.txt =404; } }" 1 "$upstream_cpus"
  start_nginx proxy "upstream up { server 127.0.0.1:$UPSTREAM; keepalive 256; }
    server { listen 127.0.0.1:$NGINX; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }
    $TLS_CONFIG" "$workers" "$cpus"
  cat > "$WORK/haproxy.cfg" <<HAP
global
  nbthread $workers
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend f
  bind 127.0.0.1:$HAPROXY
  default_backend b
$( [ -n "$TLS_CONFIG" ] && printf 'frontend ft\n  bind 127.0.0.1:%s ssl crt %s\n  default_backend b\n' "$HAPROXY_TLS" "$WORK/both.pem" )
backend b
  server s1 127.0.0.1:$UPSTREAM
HAP
  taskset -c "$cpus" haproxy -f "$WORK/haproxy.cfg" -db 2>/dev/null & PIDS+=($!)
  cat > "$WORK/Caddyfile" <<CADDY
{
  admin off
  auto_https off
}
http://127.0.0.1:$CADDY {
  reverse_proxy 127.0.0.1:$UPSTREAM
}
CADDY
  GOMAXPROCS="$workers" taskset -c "$cpus" caddy run --config "$WORK/Caddyfile" --adapter caddyfile >/dev/null 2>&1 & PIDS+=($!)
  VELOFLUX_DATA_DIR="$WORK/vf" VELOFLUX_API_ADDR=127.0.0.1:$API VELOFLUX_ADMIN_ADDR=127.0.0.1:0 VELOFLUX_METRICS_ADDR=127.0.0.1:0 \
    VELOFLUX_EDGE_HTTP_ADDR=127.0.0.1:$VELOFLUX VELOFLUX_EDGE_HTTPS_ADDR=$VF_HTTPS VELOFLUX_LOG=warn VELOFLUX_LOG_FORMAT=json \
    VELOFLUX_ADMIN_EMAIL=bench@veloflux.local VELOFLUX_ADMIN_PASSWORD=bench-password-1 \
    VELOFLUX_RATE_LIMITS__FREE=1000000 VELOFLUX_EDGE__FREE_RPS=100000000 VELOFLUX_EDGE__FREE_CONCURRENCY=1000000 \
    VELOFLUX_EDGE__ACCESS_LOG=off taskset -c "$cpus" "$VF" serve >"$WORK/vf.log" 2>&1 & PIDS+=($!)
  for _ in $(seq 1 100); do curl -fs "127.0.0.1:$API/ready" >/dev/null 2>&1 && break; sleep 0.1; done
  local token
  token=$(curl -fs -X POST "127.0.0.1:$API/auth/login" -H 'content-type: application/json' \
    -d '{"email":"bench@veloflux.local","password":"bench-password-1"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  api() { curl -fs -X POST "127.0.0.1:$API$1" -H "authorization: Bearer $token" -H 'content-type: application/json' -d "$2" >/dev/null; }
  api /api/pools '{"name":"bench","algorithm":"round_robin","health_check":{"enabled":false}}' || true
  api /api/backends "{\"address\":\"127.0.0.1:$UPSTREAM\",\"pool\":\"bench\"}" || true
  api /api/routes '{"host":"127.0.0.1","pool":"bench"}' || true
  if [ -n "$TLS_CONFIG" ]; then
    api /api/routes '{"host":"localhost","pool":"bench"}' || true
    api /api/certificates "$(python3 -c 'import json,sys; print(json.dumps({"certificate": open(sys.argv[1]).read(), "private_key": open(sys.argv[2]).read()}))' "$WORK/cert.pem" "$WORK/key.pem")" || true
  fi
  sleep 1
  for port in $UPSTREAM $VELOFLUX $NGINX $HAPROXY $CADDY; do
    curl -fs -o /dev/null "http://127.0.0.1:$port/" || { echo "nothing answers on port $port" >&2; cat "$WORK/vf.log" >&2; exit 1; }
  done
}

stop_all() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }

# wrk's summary -> "rps p50_ms p99_ms"
measure() { # port or URL
  local url="$1"; case "$url" in http*) ;; *) url="http://127.0.0.1:$1/" ;; esac
  taskset -c "$LOAD_CPUS" wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "$url" 2>/dev/null | python3 -c '
import re, sys
text = sys.stdin.read()
def ms(label):
    m = re.search(r"^\s*" + str(label) + r"%\s+([\d.]+)(us|ms|s)", text, re.M)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
print(f"{rps:.0f} {ms(50):.3f} {ms(99):.3f}")'
}

throughput() { # label workers proxy-cpuset upstream-and-load-cpuset
  LOAD_CPUS="$4"
  start_all "$2" "$3" "$4"
  declare -A RPS P50 P99
  for name in upstream veloflux nginx haproxy caddy; do RPS[$name]=""; P50[$name]=""; P99[$name]=""; done
  for round in $(seq 1 "$ROUNDS"); do
    for entry in upstream:$UPSTREAM veloflux:$VELOFLUX nginx:$NGINX haproxy:$HAPROXY caddy:$CADDY; do
      read -r rps p50 p99 < <(measure "${entry#*:}")
      RPS[${entry%%:*}]+="$rps "; P50[${entry%%:*}]+="$p50 "; P99[${entry%%:*}]+="$p99 "
    done
  done
  stop_all
  python3 - "$1" "${RPS[upstream]}" "${P50[upstream]}" "${P99[upstream]}" "${RPS[veloflux]}" "${P50[veloflux]}" "${P99[veloflux]}" \
    "${RPS[nginx]}" "${P50[nginx]}" "${P99[nginx]}" "${RPS[haproxy]}" "${P50[haproxy]}" "${P99[haproxy]}" \
    "${RPS[caddy]}" "${P50[caddy]}" "${P99[caddy]}" <<'PY'
import statistics, sys
label, values = sys.argv[1], sys.argv[2:]
names = ["upstream (direct)", "veloflux", "nginx", "haproxy", "caddy"]
rows = {}
for i, name in enumerate(names):
    rps, p50, p99 = (statistics.median(map(float, values[3 * i + k].split())) for k in range(3))
    rows[name] = (rps, p50, p99)
vf = rows["veloflux"]
print(f"\n{label}")
print(f"{'proxy':<20}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'req/s vs VF':>14}{'p99 vs VF':>11}")
for name, (rps, p50, p99) in rows.items():
    print(f"{name:<20}{rps:>10.0f}{p50:>10.3f}{p99:>10.3f}{rps / vf[0]:>14.2f}{p99 / vf[2]:>11.2f}")
PY
}

idle() {
  LOAD_CPUS=1
  start_all 1 0 1
  python3 - "$IDLE_CONNECTIONS" "$VELOFLUX" "$NGINX" "$(pgrep -f "$WORK/proxy/nginx.conf" | tail -1)" "$(pgrep -f "$VF serve")" <<'PY'
import socket, sys, time
count, vf_port, ng_port, ng_pid, vf_pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
def rss(pid):
    total = 0
    for p in [pid] + open(f"/proc/{pid}/task/{pid}/children").read().split():
        for line in open(f"/proc/{p}/status"):
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total
def hold(port, pid):
    before = rss(pid)
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        socks.append(s)
    for s in socks:
        s.recv(4096)
    time.sleep(2)
    after = rss(pid)
    for s in socks:
        s.close()
    return (after - before) / count
print(f"\nidle keep-alive connections: {count}")
print(f"{'proxy':<12}{'KiB per connection':>20}")
for name, port, pid in [("veloflux", vf_port, vf_pid), ("nginx", ng_port, ng_pid)]:
    print(f"{name:<12}{hold(port, pid):>20.2f}")
PY
  stop_all
}

https() {
  LOAD_CPUS="0-$(( $(nproc) - 1 ))"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
  cat "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/both.pem"
  VF_HTTPS="127.0.0.1:$VELOFLUX_TLS"
  TLS_CONFIG="server { listen 127.0.0.1:$NGINX_TLS ssl; ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
  start_all "$(nproc)" "$LOAD_CPUS" "$LOAD_CPUS"
  declare -A RPS P50 P99
  for round in $(seq 1 "$ROUNDS"); do
    for entry in veloflux:$VELOFLUX_TLS nginx:$NGINX_TLS haproxy:$HAPROXY_TLS; do
      read -r rps p50 p99 < <(measure "https://localhost:${entry#*:}/")
      RPS[${entry%%:*}]+="$rps "; P50[${entry%%:*}]+="$p50 "; P99[${entry%%:*}]+="$p99 "
    done
  done
  stop_all
  python3 - "${RPS[veloflux]}" "${P50[veloflux]}" "${P99[veloflux]}" "${RPS[nginx]}" "${P50[nginx]}" "${P99[nginx]}" \
    "${RPS[haproxy]}" "${P50[haproxy]}" "${P99[haproxy]}" <<'PY'
import statistics, sys
values = sys.argv[1:]
rows = {}
for i, name in enumerate(["veloflux", "nginx", "haproxy"]):
    rows[name] = tuple(statistics.median(map(float, values[3 * i + k].split())) for k in range(3))
vf = rows["veloflux"]
print("\nHTTPS to the proxy, keep-alive (all cores; upstream and wrk share them)")
print(f"{'proxy':<20}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'req/s vs VF':>14}{'p99 vs VF':>11}")
for name, (rps, p50, p99) in rows.items():
    print(f"{name:<20}{rps:>10.0f}{p50:>10.3f}{p99:>10.3f}{rps / vf[0]:>14.2f}{p99 / vf[2]:>11.2f}")
PY
}

echo "VeloFlux edge benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -m)"
case "$MODE" in
  throughput)
    last=$(( $(nproc) - 1 ))
    throughput "one worker on core 0 (upstream and wrk on core $last)" 1 0 "$last"
    throughput "all cores ($(nproc) workers; upstream and wrk share them)" "$(nproc)" "0-$last" "0-$last"
    ;;
  idle) idle ;;
  https) https ;;
  *) echo "usage: bash bench/edge.sh [throughput|idle|https]" >&2; exit 2 ;;
esac
