#!/usr/bin/env bash
# Part of make test-net: Transmission 3.00 with its default settings ("prefer encryption":
# it dials with an encrypted MSE handshake first) finds our seeder through our HTTP tracker
# and downloads from it. Transmission never dials a loopback peer, so this runs across the
# namespaces tests/net/run.sh made: tracker on h0, our seeder on h1, Transmission on h2.
# Checks: the file arrives whole; our seeder's log shows an encrypted handshake from
# Transmission's address; Transmission listed our seeder as a connection it made.
set -euo pipefail
cd "$(dirname "$0")/../.."
NS=$1
SUBNET=$2
W=$(mktemp -d /tmp/p2p-net-tr.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
command -v transmission-daemon >/dev/null || { echo "test-net: transmission-daemon is missing (apt-get install transmission-daemon transmission-cli)"; exit 1; }
in_ns() { local h=$1; shift; ip netns exec "$NS-$h" "$@"; }

mkdir -p "$W/seed/files" "$W/tr/cfg" "$W/tr/dl"
head -c $((16 * 1024 * 1024)) /dev/urandom > "$W/seed/files/mse.bin"
ip netns exec "$NS-h0" target/release/tracker --bind "$SUBNET.1:5000" --http "$SUBNET.1:8080" > "$W/tracker.log" 2>&1 &
pids+=($!)
sleep 0.5
ip netns exec "$NS-h1" target/release/peer --tracker "$SUBNET.1:5000" --dir "$W/seed" --port 6000 --upload-limit 3M serve \
  > "$W/seed.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "You are running on port" "$W/seed.log" && break; sleep 0.1; done
target/release/peer --dir "$W/seed" torrent mse.bin > /dev/null
grep -q "$SUBNET.1:8080/announce" "$W/seed/mse.bin.torrent" || { echo "test-net: the torrent does not name the HTTP tracker"; exit 1; }

cat > "$W/tr/cfg/settings.json" <<J
{"rpc-authentication-required": false, "rpc-port": 9091, "rpc-bind-address": "127.0.0.1",
 "dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
 "port-forwarding-enabled": false, "peer-port": 51413, "peer-port-random-on-start": false,
 "bind-address-ipv4": "$SUBNET.3", "download-dir": "$W/tr/dl", "incomplete-dir-enabled": false,
 "message-level": 2}
J
ip netns exec "$NS-h2" transmission-daemon -f -g "$W/tr/cfg" > "$W/tr.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do in_ns h2 transmission-remote 9091 -l > /dev/null 2>&1 && break; sleep 0.2; done
in_ns h2 transmission-remote 9091 -a "$W/seed/mse.bin.torrent" > /dev/null
done=""
for _ in $(seq 240); do
  in_ns h2 transmission-remote 9091 -t 1 -pi >> "$W/peers.txt" 2>&1 || true
  if in_ns h2 transmission-remote 9091 -l | grep -q "100%"; then done=1; break; fi
  sleep 0.5
done
[ -n "$done" ] || { echo "test-net: Transmission did not finish"; in_ns h2 transmission-remote 9091 -t 1 -i; tail -20 "$W/seed.log"; exit 1; }
cmp "$W/seed/files/mse.bin" "$W/tr/dl/mse.bin" || { echo "test-net: Transmission's copy differs"; exit 1; }
if ! grep -q "BitTorrent peer $SUBNET.3:[0-9]* connected for 'mse.bin' (encrypted handshake)" "$W/seed.log"; then
  echo "test-net: no encrypted handshake from Transmission in the seeder's log:"; grep "BitTorrent peer" "$W/seed.log" | head; exit 1
fi
# Transmission's flags: I marks a connection the other side made; ours must appear without it.
if ! grep "^$SUBNET.2 " "$W/peers.txt" | awk '$2 ~ /^[A-Za-z?]+$/ && $2 !~ /I/' | grep -q .; then
  echo "test-net: Transmission never listed a connection it made to our seeder:"; grep "$SUBNET.2" "$W/peers.txt" | sort -u | head; exit 1
fi
echo "test-net: Transmission (default settings) dialed our seeder with an encrypted handshake and downloaded 16 MiB"
echo "test-net: Transmission's view of our seeder: $(grep "^$SUBNET.2 " "$W/peers.txt" | awk '{print $2}' | sort | uniq -c | tr '\n' ' ')"
