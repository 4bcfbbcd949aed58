#!/usr/bin/env bash
# The original's scenario on one machine: a tracker and four clients.
#   client1 shares a file; client2 downloads it from client1 alone; client3 joins while
#   client2 is downloading; client4 comes later and downloads from client1, 2 and 3 at once.
# Every upload is capped (DEMO_LIMIT, default 4M = 4 MiB/s) so the difference is real.
# Logs: demo/work/*.log. Ends with a table of download times and SHA-1 checks.
# --check: exit non-zero unless every copy is correct and client4 beat client2 (or took at
# most DEMO_MAX_RATIO of client2's time).
# DEMO_NETNS=NAME runs each process in its own network namespace NAME-h0 (tracker) ..
# NAME-h4 (client4), as tests/net/run.sh sets them up; the tracker is then at
# DEMO_TRACKER_IP and no upload limit is set (the links are the limit).
# DEMO_DHT=1: no tracker service; the tracker host runs only a DHT bootstrap node
# (`tracker --dht-port`, its native port unused) and the clients find each other through
# the DHT alone, downloading by magnet link.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MIB=${DEMO_SIZE_MIB:-40}
LIMIT=${DEMO_LIMIT:-4M}
PORT=${DEMO_PORT:-5000}
FIRST_PEER_PORT=${DEMO_FIRST_PEER_PORT:-6000}
CHECK=${1:-}
NETNS=${DEMO_NETNS:-}
MAX_RATIO=${DEMO_MAX_RATIO:-1}
BIN=target/release
WORK=demo/work
TRACKER_IP=${DEMO_TRACKER_IP:-127.0.0.1}
TRACKER=$TRACKER_IP:$PORT
LIMIT_ARGS=(--upload-limit "$LIMIT")
[ -z "$NETNS" ] || LIMIT_ARGS=()
DHT=${DEMO_DHT:-}
DHT_PORT=${DEMO_DHT_PORT:-6881}
PEER_TRACKER=$TRACKER
EXTRA_ARGS=()
if [ -n "$DHT" ]; then
  PEER_TRACKER=$TRACKER_IP:1 # nothing listens there: peers have only the DHT
  EXTRA_ARGS=(--dht-bootstrap "$TRACKER_IP:$DHT_PORT" --port "$FIRST_PEER_PORT")
fi

on() { # host command...: becomes the command on that host (its namespace, with DEMO_NETNS)
  local host=$1; shift
  if [ -n "$NETNS" ]; then exec ip netns exec "$NETNS-$host" "$@"; else exec "$@"; fi
}

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'echo "demo: interrupted"; exit 130' INT TERM

for b in tracker peer; do
  [ -x "$BIN/$b" ] || { echo "demo: $BIN/$b is missing; run 'make demo' (it builds first)"; exit 1; }
done

rm -rf "$WORK"
mkdir -p "$WORK"/client{1,2,3,4}/files
echo "demo: making a ${SIZE_MIB} MiB test file in $WORK/client1/files"
head -c $((SIZE_MIB * 1024 * 1024)) /dev/urandom > "$WORK/client1/files/test.bin"

wait_for() { # file pattern seconds
  local deadline=$((SECONDS + $3))
  until grep -q -- "$2" "$1" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then echo "demo: timed out waiting for '$2' in $1"; tail -5 "$1" || true; exit 1; fi
    sleep 0.1
  done
}

peer() { # name args...
  local name=$1; shift
  (on "h${name#client}" "$BIN/peer" --tracker "$PEER_TRACKER" --dir "$WORK/$name" ${LIMIT_ARGS[@]+"${LIMIT_ARGS[@]}"} \
    ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"} \
    --log "$WORK/$name.log" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err") &
  pids+=($!)
}

TRACKER_ARGS=()
[ -z "$DHT" ] || TRACKER_ARGS=(--dht-port "$DHT_PORT")
(on h0 "$BIN/tracker" --bind "$TRACKER" --first-peer-port "$FIRST_PEER_PORT" --log "$WORK/tracker.log" \
  ${TRACKER_ARGS[@]+"${TRACKER_ARGS[@]}"} > "$WORK/tracker.out" 2>&1) &
pids+=($!)
wait_for "$WORK/tracker.log" "Server started on port" 10

if [ -n "$NETNS" ]; then
  echo "demo: client1 shares test.bin (each host's uplink is shaped; no upload limit)"
else
  echo "demo: client1 shares test.bin (uploads capped at $LIMIT/s each)"
fi
peer client1 serve
TARGET=test.bin
FROM=(--from "$FIRST_PEER_PORT")
if [ -n "$DHT" ]; then
  wait_for "$WORK/client1.log" "on the DHT" 60
  # Only the info-hash: no tracker, no peer address, the DHT names the sources.
  TARGET=$("$BIN/peer" --dir "$WORK/client1" magnet test.bin | sed 's/&.*//')
  FROM=()
  echo "demo: the clients find each other through the DHT only ($TARGET)"
else
  wait_for "$WORK/tracker.log" "shares 'test.bin'" 60
fi

echo "demo: client2 downloads from client1, the only holder"
peer client2 download "$TARGET" ${FROM[@]+"${FROM[@]}"} --stay --timeline "$WORK/client2.csv"
wait_for "$WORK/client2.out" "test.bin: [2-9][0-9]%" 120

echo "demo: client3 joins while client2 is downloading"
peer client3 download "$TARGET" --stay --timeline "$WORK/client3.csv"
wait_for "$WORK/client2.out" "Download time is" 300

echo "demo: client4 joins later and downloads from everyone"
peer client4 download "$TARGET" --stay --timeline "$WORK/client4.csv"
wait_for "$WORK/client4.out" "Download time is" 300
wait_for "$WORK/client3.out" "Download time is" 300

# Peers are named in the table and the picture as in its rows (client1-4), not by the
# address the Chunks lines and timelines give (the port on one machine, ip:port across hosts).
declare -A label
for i in 1 2 3 4; do
  port=$(grep -m1 "You are running on port" "$WORK/client$i.out" | awk '{print $NF}')
  if [ -n "$NETNS" ]; then label[client$i]="${TRACKER_IP%.*}.$((i + 1)):$port"; else label[client$i]=$port; fi
done
named() { # text with sources labelled by address -> the same with client names
  local s=$1 c
  for c in client1 client2 client3 client4; do
    [ -n "${label[$c]}" ] || continue
    s=$(printf '%s' "$s" | sed -E "s/(from |,)${label[$c]//./\\.}(,|\$)/\1$c\2/g")
  done
  printf '%s' "$s"
}

want=$(sha1sum "$WORK/client1/files/test.bin" | cut -d' ' -f1)
echo
printf '%-8s %10s %10s  %-8s  %s\n' client seconds "MiB/s" "SHA-1" "chunks per source"
ok=1
declare -A secs srcs
for c in client2 client3 client4; do
  s=$(grep -m1 "Download time is" "$WORK/$c.out" | awk '{print $4}')
  secs[$c]=$s
  got=$(sha1sum "$WORK/$c/files/test.bin" | cut -d' ' -f1)
  [ "$got" = "$want" ] && mark=ok || { mark=WRONG; ok=0; }
  rate=$(awk -v s="$s" -v m="$SIZE_MIB" 'BEGIN { printf "%.1f", m / s }')
  src=$(named "$(grep -m1 "^Chunks:" "$WORK/$c.out" | sed 's/^Chunks: //')")
  srcs[$c]=$src
  printf '%-8s %10.2f %10s  %-8s  %s\n' "$c" "$s" "$rate" "$mark" "$src"
done
echo
awk -v a="${secs[client4]}" -v b="${secs[client2]}" 'BEGIN {
  printf "client4 took %.1f s against client2'"'"'s %.1f s: %.2f of the time (the original: 22.5 s vs 37.7 s, 0.60)\n", a, b, a / b }'
if [[ "${srcs[client2]}" == *client3* ]]; then
  echo "client2 also got chunks from client3: a peer serves the chunks it has while it downloads, and client3 joined while client2 was still at it"
fi
echo "SHA-1 of the original: $want"
echo "logs: $WORK/*.log"
for c in client2 client3 client4; do
  wait_for "$WORK/$c.csv" "seconds" 10
  named "$(cat "$WORK/$c.csv")" > "$WORK/$c.named.csv"
done
"$BIN/swarm-svg" "$WORK/swarm.svg" client2="$WORK/client2.named.csv" client3="$WORK/client3.named.csv" \
  client4="$WORK/client4.named.csv"
echo "picture of the swarm: $WORK/swarm.svg"

if [ "$CHECK" = "--check" ]; then
  faster=$(awk -v a="${secs[client4]}" -v b="${secs[client2]}" -v r="$MAX_RATIO" 'BEGIN { print (a < b && a <= r * b) ? 1 : 0 }')
  [ "$ok" = 1 ] || { echo "demo check: a copy is corrupt"; exit 1; }
  [ "$faster" = 1 ] || { echo "demo check: client4 took more than $MAX_RATIO of client2's time"; exit 1; }
  echo "demo check: all copies correct, client4 took at most $MAX_RATIO of client2's time"
fi
