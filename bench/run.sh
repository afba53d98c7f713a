#!/usr/bin/env bash
# Yiren benchmark: builds release, starts the real binary on an empty data directory, and prints
#   - release binary size
#   - time from exec to the first 200 on /healthz (median of 5 cold starts)
#   - idle RSS on SQLite after start-up and a few requests
#   - requests/s and p99 latency of the public home page under wrk on loopback, beside the same
#     figures for a bare axum handler that reads one SQLite row (bench/src/main.rs), measured in the
#     same run, and their ratio; the same for a product page (two variants, Markdown description);
#     the product page's weight in bytes and the number of requests it needs
#   - storefront search p50/p99 with 1,000 and 100,000 products (src/bin/search.rs)
#   - a 10,000-row Shopify CSV import: time and peak RSS (src/bin/import.rs)
#   - checkouts/s and p99 on SQLite and PostgreSQL beside one durable SQLite commit per request
#     (src/bin/checkout.rs)
# Figures only: nothing here passes or fails. Needs wrk (apt-get install wrk) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
CONNS="${CONNS:-32}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p yiren -p yiren-bench-baseline --bins
TARGET="${CARGO_TARGET_DIR:-target}/release"
BIN="$TARGET/yiren"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== Yiren benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
printf "release binary size:      %.1f MB\n" "$(echo "$(stat -c %s "$BIN") / 1048576" | bc -l)"

# Cold start: exec -> first 200 on /healthz, empty data dir each time.
starts=()
for i in 1 2 3 4 5; do
  d="$work/start$i"
  ms=$(python3 - "$BIN" "$d" <<'PY'
import subprocess, sys, time, urllib.request
bin, d = sys.argv[1], sys.argv[2]
port = 18100
t0 = time.perf_counter()
p = subprocess.Popen([bin, "--data-dir", d, "serve", "--addr", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while True:
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200:
            break
    except Exception:
        time.sleep(0.001)
t = (time.perf_counter() - t0) * 1000
p.terminate(); p.wait()
print(f"{t:.0f}")
PY
)
  starts+=("$ms")
done
sorted=($(printf "%s\n" "${starts[@]}" | sort -n))
echo "exec -> first /healthz 200: median ${sorted[2]} ms (runs: ${starts[*]}; target <= 300 ms)"

# The server under load, on a data dir with SQLite and one product (src/bin/seed-product.rs).
PRODUCT=$("$TARGET/seed-product" "$work/data")
"$BIN" --data-dir "$work/data" serve --addr 127.0.0.1:18101 >/dev/null 2>&1 &
YPID=$!
for _ in $(seq 1 300); do curl -sf http://127.0.0.1:18101/healthz >/dev/null && break; sleep 0.01; done
for _ in 1 2 3 4 5; do curl -sf http://127.0.0.1:18101/ >/dev/null; done
# Wait for the photo's sizes (the media.resize job runs at start).
for _ in $(seq 1 300); do curl -s "http://127.0.0.1:18101$PRODUCT" | grep -q 'medium.webp' && break; sleep 0.05; done
sleep 2
rss=$(awk '/VmRSS/ {print $2}' /proc/$YPID/status)
printf "idle RSS (SQLite):        %.1f MB (target <= 30 MB)\n" "$(echo "$rss / 1024" | bc -l)"

"$TARGET/bare-axum" 127.0.0.1:18102 "$work/bare.db" &
for _ in $(seq 1 300); do curl -sf http://127.0.0.1:18102/ >/dev/null && break; sleep 0.01; done

measure() { # url -> "rps p99_ms"
  wrk -t2 -c"$CONNS" -d2s "$1" >/dev/null # warm-up
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "$1" | python3 -c '
import sys, re
t = sys.stdin.read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
m = re.search(r"99%\s+([\d.]+)(us|ms|s)", t)
v = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print(f"{rps:.0f} {v:.2f} {errs.group(1) if errs else 0}")'
}
read -r y_rps y_p99 y_err < <(measure http://127.0.0.1:18101/)
read -r b_rps b_p99 b_err < <(measure http://127.0.0.1:18102/)
read -r p_rps p_p99 p_err < <(measure "http://127.0.0.1:18101$PRODUCT")
echo "home page (Yiren):         $y_rps req/s, p99 $y_p99 ms, non-2xx $y_err  [wrk -c$CONNS -d${DURATION}s]"
echo "product page (Yiren):      $p_rps req/s, p99 $p_p99 ms, non-2xx $p_err"
echo "bare axum + 1 SQLite row:  $b_rps req/s, p99 $b_p99 ms, non-2xx $b_err"
python3 -c "print(f'ratio home / bare:        {100*$y_rps/$b_rps:.0f} % of requests/s (target >= 60 %), p99 x{$y_p99/$b_p99:.2f}')"
python3 -c "print(f'ratio product / bare:     {100*$p_rps/$b_rps:.0f} % of requests/s (target >= 60 %), p99 x{$p_p99/$b_p99:.2f}')"
# Page weight: the HTML plus what a desktop browser that takes WebP loads from it (the stylesheet
# and the photo's 640-pixel WebP; no scripts).
html=$(curl -s "http://127.0.0.1:18101$PRODUCT" | sed 's/&#x2f;/\//g')
page_bytes=$(printf "%s" "$html" | wc -c)
css_bytes=$(curl -s http://127.0.0.1:18101/assets/yiren.css | wc -c)
img_url=$(printf "%s" "$html" | grep -Eo '/media/products/[0-9]+/[0-9]+/medium\.webp' | head -n1 || true)
img_bytes=0; [ -n "$img_url" ] && img_bytes=$(curl -s "http://127.0.0.1:18101$img_url" | wc -c)
requests=$(printf "%s" "$html" | grep -Eo '<(link rel="stylesheet"|script src|img )' | wc -l)
images=$(printf "%s" "$html" | grep -Eo '<img ' | wc -l)
sized=$(printf "%s" "$html" | grep -Eo '<img [^>]*width="[0-9]+" height="[0-9]+"' | wc -l)
echo "product page weight:       $((page_bytes + css_bytes + img_bytes)) bytes uncompressed ($page_bytes HTML + $css_bytes CSS + $img_bytes image), $((requests + 1)) requests, $sized of $images images with width/height"

echo
"$TARGET/search" ${SEARCH_SIZES:-1000 100000}

echo
"$TARGET/import" "${IMPORT_ROWS:-10000}"

echo
"$TARGET/auth-timing" "${AUTH_SAMPLES:-200}"

echo
# Checkout: durable orders/s and p99 on SQLite (and PostgreSQL when YIREN_TEST_DATABASE_URL is set)
# beside one durable SQLite commit per request (src/bin/checkout.rs).
"$TARGET/checkout" "$BIN" "${DURATION}" "${SHOPPERS:-16}"

echo
# Reach: a broadcast to 10,000 and 100,000 subscribers into a local SMTP sink (src/bin/broadcast.rs).
"$TARGET/broadcast" "$BIN" ${BROADCAST_SIZES:-10000 100000}
