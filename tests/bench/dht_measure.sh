#!/bin/bash
# Run by hand after `cargo build --release`: prints the lines the DHT issue asks for.
# Time to first chunk (DHT only vs tracker only), idle DHT traffic, RSS with DHT on/off.
B=$(cd "$(dirname "$0")/../.." && pwd)/target/release
D=$(mktemp -d); mkdir -p $D/seed/files
head -c 16M /dev/urandom > $D/seed/files/m.bin
fpu() { /usr/bin/python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
DP=$(fpu)
$B/tracker --bind 127.0.0.1:0 --dht-port $DP > $D/t.log 2>&1 & TP=$!
sleep 0.5
NP=$(grep -o "port: [0-9]*" $D/t.log | head -1 | awk '{print $2}')
$B/peer --tracker 127.0.0.1:$NP --dir $D/seed --port 0 --dht-bootstrap 127.0.0.1:$DP serve > $D/seed.log 2>&1 & SP=$!
for i in $(seq 100); do grep -q "on the DHT" $D/seed.log && break; sleep 0.1; done
M=$($B/peer --dir $D/seed magnet m.bin | sed 's/&.*//')
first() { awk -F, 'NR>1 {print $3}' $1 | sort -g | head -1; }
for mode in dht tracker; do
  for r in 1 2 3 4 5; do
    W=$D/$mode$r; mkdir -p $W
    if [ $mode = dht ]; then
      $B/peer --tracker 127.0.0.1:1 --dir $W --port 0 --dht-bootstrap 127.0.0.1:$DP --log-level warn download "$M" --timeline $W/t.csv > /dev/null 2>&1
    else
      $B/peer --tracker 127.0.0.1:$NP --dir $W --port 0 --log-level warn download "$M" --timeline $W/t.csv > /dev/null 2>&1
    fi
    echo "$mode $(first $W/t.csv)"
  done
done
# Idle DHT traffic of the seeder over 60 s.
timeout 60 strace -f -e trace=sendto,sendmsg -p $SP -o $D/strace.txt 2>/dev/null
echo "idle dht sends in 60 s: $(grep -c 'sendto\|sendmsg' $D/strace.txt) calls, $(grep -o '= [0-9]*$' $D/strace.txt | awk '{s+=$2} END {print s+0}') bytes"
echo "seeder RSS with DHT: $(grep VmRSS /proc/$SP/status)"
mkdir -p $D/plain/files; cp $D/seed/files/m.bin $D/plain/files/
$B/peer --tracker 127.0.0.1:$NP --dir $D/plain --port 0 serve > $D/plain.log 2>&1 & PP=$!
sleep 8
echo "seeder RSS without DHT: $(grep VmRSS /proc/$PP/status)"
kill $SP $PP $TP
