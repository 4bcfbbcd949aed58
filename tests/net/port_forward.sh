#!/usr/bin/env bash
# Part of make test-net: a peer behind a home router is reached through the port it asks
# the router to forward (--port-forward). The router is Debian's miniupnpd (nftables) in a
# namespace of its own that NATs a private LAN (192.168.77.0/24) onto a "public" one
# (11.77.0.0/24: miniupnpd refuses to forward on a private or documentation address; these
# exist only inside the namespaces this script makes, which have no route anywhere else).
#   inside  (192.168.77.2): our peer, sharing a file, default route via the router
#   router  (192.168.77.1 / 11.77.0.1): miniupnpd, masquerade, forwards only what is mapped
#   outside (11.77.0.2): the tracker and a downloader
# For NAT-PMP, then UPnP IGD (one router for each, the other protocol off):
#   1. without --port-forward, the downloader cannot reach the inside peer (the download fails);
#   2. with it, the peer maps its port, the tracker lists the router's address with the
#      mapped port, and the downloader gets the file whole through the router;
#   3. after the inside peer exits (Ctrl+C), the router forwards nothing.
# NAT-PMP runs with the peer's port already mapped to another inside port, so the router
# grants another public port: the peer must announce that one.
set -euo pipefail
cd "$(dirname "$0")/../.."
NS=${NET_NS:-p2pnet}-nat
W=$(mktemp -d /tmp/p2p-net-nat.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for h in r in out; do ip netns del "$NS-$h" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT
for t in miniupnpd nft natpmpc; do
  command -v $t >/dev/null || { echo "test-net: $t is missing (apt-get install miniupnpd-nftables nftables natpmpc)"; exit 1; }
done
in_ns() { local h=$1; shift; ip netns exec "$NS-$h" "$@"; }
fail() { echo "test-net: port forwarding: $*"; for f in "$W"/*.log; do echo "--- $f"; tail -15 "$f"; done; exit 1; }

for h in r in out; do ip netns del "$NS-$h" 2>/dev/null || true; ip netns add "$NS-$h"; done
ip -n "$NS-r" link add lan0 type veth peer name eth0 netns "$NS-in"
ip -n "$NS-r" link add wan0 type veth peer name eth0 netns "$NS-out"
ip -n "$NS-r" addr add 192.168.77.1/24 dev lan0
ip -n "$NS-r" addr add 11.77.0.1/24 dev wan0
ip -n "$NS-in" addr add 192.168.77.2/24 dev eth0
ip -n "$NS-out" addr add 11.77.0.2/24 dev eth0
for h in r in out; do ip -n "$NS-$h" link set lo up; done
ip -n "$NS-r" link set lan0 up
ip -n "$NS-r" link set wan0 up
ip -n "$NS-in" link set eth0 up
ip -n "$NS-out" link set eth0 up
ip -n "$NS-in" route add default via 192.168.77.1
in_ns r sysctl -qw net.ipv4.ip_forward=1
# A home router's rules: the LAN goes out masqueraded; nothing comes in unless mapped
# (miniupnpd fills its chains).
in_ns r nft -f - <<'NFT'
table inet filter {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "lan0" oifname "wan0" accept
    jump miniupnpd
  }
  chain miniupnpd {
  }
}
table inet nat {
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    jump miniupnpd
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    jump miniupnpd_post
    oifname "wan0" masquerade
  }
  chain miniupnpd {
  }
  chain miniupnpd_post {
  }
}
NFT

mkdir -p "$W/inside/files"
head -c $((8 * 1024 * 1024)) /dev/urandom > "$W/inside/files/behind-nat.bin"
# Background processes are started with ip netns exec itself (which execs them), not through
# in_ns: a shell function in the background is a subshell, and a signal sent to it would not
# reach the process.
ip netns exec "$NS-out" target/release/tracker --bind 11.77.0.2:5000 > "$W/tracker.log" 2>&1 &
pids+=($!)
sleep 0.5

# Starts the inside peer (with extra flags); waits until it is registered.
start_inside() {
  ip netns exec "$NS-in" target/release/peer --tracker 11.77.0.2:5000 --dir "$W/inside" --port 6000 "$@" serve \
    > "$W/inside.log" 2>&1 &
  inside=$!
  pids+=($inside)
  for _ in $(seq 100); do grep -q "You are running on port" "$W/inside.log" && return; sleep 0.1; done
  fail "the inside peer did not start"
}
stop_inside() {
  kill -INT "$inside"
  for _ in $(seq 100); do kill -0 "$inside" 2>/dev/null || return 0; sleep 0.1; done
  fail "the inside peer did not stop on Ctrl+C"
}
# Downloads the file outside into a fresh folder; returns the download's exit status.
download_outside() {
  rm -rf "$W/outside"
  in_ns out timeout 60 target/release/peer --tracker 11.77.0.2:5000 --dir "$W/outside" --port 0 \
    download behind-nat.bin --stall-timeout 5 > "$W/outside.log" 2>&1
}
forwarded() { in_ns r nft list chain inet nat miniupnpd | grep -c dnat || true; }

for proto in NAT-PMP UPnP; do
  if [ "$proto" = NAT-PMP ]; then natpmp=yes; upnp=no; else natpmp=no; upnp=yes; fi
  cat > "$W/miniupnpd.conf" <<CONF
ext_ifname=wan0
listening_ip=lan0
http_port=0
enable_natpmp=$natpmp
enable_upnp=$upnp
secure_mode=yes
uuid=3a9f1f0e-7b2c-4c5e-9d7a-0123456789ab
upnp_table_name=filter
upnp_nat_table_name=nat
upnp_forward_chain=miniupnpd
upnp_nat_chain=miniupnpd
upnp_nat_postrouting_chain=miniupnpd_post
allow 1024-65535 192.168.77.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
CONF
  ip netns exec "$NS-r" miniupnpd -f "$W/miniupnpd.conf" -P "$W/miniupnpd.pid" -d > "$W/miniupnpd.log" 2>&1 &
  router=$!
  pids+=($router)
  sleep 1

  start_inside
  if download_outside; then fail "$proto: the downloader reached the inside peer without a forwarded port"; fi
  stop_inside

  want=6000
  if [ "$proto" = NAT-PMP ]; then
    # Someone else inside already has public port 6000: the router grants another.
    in_ns in natpmpc -a 6000 7000 tcp 600 > "$W/natpmpc.log" 2>&1 || fail "natpmpc could not map port 6000"
    want=6001
  fi
  start_inside --port-forward
  grep -q "Port forwarding: the router forwards TCP 11.77.0.1:$want to our port 6000 ($proto" "$W/inside.log" \
    || fail "$proto: no mapping of public port $want in the inside peer's log"
  grep "clients now" "$W/tracker.log" | tail -1 | grep -q "'11.77.0.1:$want'" \
    || fail "$proto: the tracker does not list the router's address with port $want"
  download_outside || fail "$proto: the download through the router failed"
  cmp "$W/inside/files/behind-nat.bin" "$W/outside/files/behind-nat.bin" || fail "$proto: the copy differs"
  grep -q "Chunks: 8 from 11.77.0.1:$want" "$W/outside.log" || fail "$proto: the chunks did not come through the router"
  stop_inside
  grep -q "Port forwarding: TCP port $want is no longer forwarded" "$W/inside.log" \
    || fail "$proto: the inside peer did not remove its mapping"
  left=$(in_ns r nft list chain inet nat miniupnpd | grep -c "dport $want dnat" || true)
  [ "$left" = 0 ] || fail "$proto: the router still forwards port $want after the peer left"
  echo "test-net: $proto: reached behind the router through public port $want; unreachable without it; mapping gone after exit"
  if [ "$proto" = NAT-PMP ]; then in_ns in natpmpc -a 6000 7000 tcp 0 > /dev/null; fi
  kill "$router"; wait "$router" 2>/dev/null || true
  [ "$(forwarded)" = 0 ] || in_ns r nft flush chain inet nat miniupnpd
done
