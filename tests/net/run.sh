#!/usr/bin/env bash
# make test-net: the original's scenario across five hosts. Each host (h0 tracker, h1..h4
# clients) is its own network namespace with its own address on 10.99.0.0/24, joined by a
# bridge that lives in a namespace of its own, so the machine's own network is not touched.
# Each client's uplink is shaped with tbf (NET_RATE, default 100mbit); no --upload-limit.
# Checks: every copy's SHA-1, peers listed by their own addresses, client4's time at most
# NET_MAX_RATIO (0.5) of client2's. Then Transmission dials our seeder encrypted
# (tests/net/transmission.sh), and a peer behind a miniupnpd router is reached through the
# port it had forwarded (tests/net/port_forward.sh). Everything is removed afterwards, also
# on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

NS=${NET_NS:-p2pnet}
RATE=${NET_RATE:-100mbit}
SIZE_MIB=${NET_SIZE_MIB:-48}
MAX_RATIO=${NET_MAX_RATIO:-0.5}
SUBNET=10.99.0

[ "$(id -u)" = 0 ] || { echo "test-net: needs root (network namespaces)"; exit 1; }
command -v ip >/dev/null && command -v tc >/dev/null || { echo "test-net: needs iproute2 (ip, tc)"; exit 1; }
if [ "${NET_ONLY:-}" = port_forward ]; then # NET_ONLY=port_forward: that part alone
  bash tests/net/port_forward.sh
  exit 0
fi

teardown() {
  pkill -f "target/release/(peer|tracker) .*$SUBNET" 2>/dev/null || true
  pkill -f "transmission-daemon -f -g /tmp/p2p-net-tr" 2>/dev/null || true
  for h in br h0 h1 h2 h3 h4; do ip netns del "$NS-$h" 2>/dev/null || true; done
}
trap teardown EXIT
teardown

ip netns add "$NS-br"
ip -n "$NS-br" link add br0 type bridge
ip -n "$NS-br" link set br0 up
for i in 0 1 2 3 4; do
  host="$NS-h$i"
  ip netns add "$host"
  # The veth pair is made inside the bridge's namespace, its far end moved to the host.
  ip -n "$NS-br" link add "v$i" type veth peer name eth0 netns "$host"
  ip -n "$NS-br" link set "v$i" master br0 up
  ip -n "$host" addr add "$SUBNET.$((i + 1))/24" dev eth0
  ip -n "$host" link set eth0 up
  ip -n "$host" link set lo up
  if [ "$i" -gt 0 ]; then
    ip netns exec "$host" tc qdisc add dev eth0 root tbf rate "$RATE" burst 64kb latency 50ms
  fi
done
echo "test-net: 5 hosts on $SUBNET.1-5, client uplinks shaped to $RATE"
if [ "${NET_ONLY:-}" = transmission ]; then # NET_ONLY=transmission: that part alone
  bash tests/net/transmission.sh "$NS" "$SUBNET"
  exit 0
fi

DEMO_NETNS="$NS" DEMO_TRACKER_IP="$SUBNET.1" DEMO_SIZE_MIB="$SIZE_MIB" DEMO_MAX_RATIO="$MAX_RATIO" \
  bash demo/run.sh --check

log=demo/work/tracker.log
if ! grep -q "There are 4 clients now: \['$SUBNET.2:6000', '$SUBNET.3:6000', '$SUBNET.4:6000', '$SUBNET.5:6000'\]" "$log"; then
  echo "test-net: the tracker did not list the peers by their own addresses:"; grep "clients now" "$log" | tail -3
  exit 1
fi
if grep -q "127.0.0.1" "$log"; then
  echo "test-net: a peer was seen as 127.0.0.1"; exit 1
fi
echo "test-net: peers listed by their own addresses ($SUBNET.2-5)"

# The same across the hosts with no tracker service: h0 runs only a DHT bootstrap node.
DEMO_DHT=1 DEMO_NETNS="$NS" DEMO_TRACKER_IP="$SUBNET.1" DEMO_SIZE_MIB="$SIZE_MIB" DEMO_MAX_RATIO="$MAX_RATIO" \
  bash demo/run.sh --check
for c in 2 3 4; do
  grep -q "The DHT named" "demo/work/client$c.log" || { echo "test-net: client$c did not find sources on the DHT"; exit 1; }
done
if grep -q "Registering peer" demo/work/tracker.log; then
  echo "test-net: a peer used the tracker in the DHT run"; exit 1
fi
echo "test-net: the DHT run found every source without a tracker"

bash tests/net/transmission.sh "$NS" "$SUBNET"
bash tests/net/port_forward.sh
echo "test-net: passed"
