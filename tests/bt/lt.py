#!/usr/bin/python3
"""libtorrent 2.0 (Debian python3-libtorrent) as the other side of the BitTorrent tests.

  lt.py infohash FILE                      v1 info-hash of FILE (1 MiB pieces), on stdout
  lt.py torrent FILE OUT.torrent [URL|- [PIECE [private]]]
                                           writes a v1 torrent of FILE (1 MiB pieces, or PIECE
                                           bytes; announce URL; private = 1), prints its info-hash
  lt.py infohash-of TORRENT                the v1 info-hash of a .torrent file
  lt.py torrent-default PATH OUT.torrent   writes a torrent of PATH as libtorrent does by default
                                           (hybrid v1+v2, its own piece size); prints the v1
                                           info-hash and the piece length
  lt.py seed TORRENT DIR SECONDS [RATE]    seeds FILE in DIR (uploads capped at RATE bytes/s,
                                           loopback peers included); prints "seeding PORT"
  lt.py get SOURCE SAVE_DIR SECONDS PEER.. downloads SOURCE (a .torrent path or a magnet link);
                                           prints "listening PORT" (with LT_LISTENING_AFTER_A_PIECE,
                                           once a piece came from the PEERs)
                                           (a PEER "dht:HOST:PORT" turns libtorrent's DHT on,
                                           bootstrapped off that node only)
                                           from the PEERs (HOST:PORT); prints "done S" and the
                                           bytes each peer sent, exits 1 on timeout
  lt.py crowd FILE WORK N RATE SECONDS     a flash crowd: one session seeds FILE (copied under WORK),
                                           N sessions download it at once, every session's upload
                                           capped at RATE bytes/s, every session told every other's
                                           address; prints "finished I SECONDS" per downloader
Loopback only: DHT, LSD, UPnP and NAT-PMP are off; the only peers are the ones named.
With LT_NO_PEX set, `get` and `seed` take no peers from peer exchange. With LT_ENCRYPTION=forced every session takes and makes encrypted (MSE, RC4) connections
only, both ways (out_enc_policy and in_enc_policy forced).
"""
import os, sys, time, libtorrent as lt

SETTINGS = {
    "listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
    "enable_upnp": False, "enable_natpmp": False, "allow_multiple_connections_per_ip": True,
    "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.peer_notification,
}

if os.environ.get("LT_ENCRYPTION") == "forced":
    SETTINGS.update({
        "out_enc_policy": lt.enc_policy.forced, "in_enc_policy": lt.enc_policy.forced,
        "allowed_enc_level": lt.enc_level.rc4, "prefer_rc4": True,
    })


def make_torrent(path, tracker=None, piece=1 << 20, private=False):
    fs = lt.file_storage()
    lt.add_files(fs, path)
    ct = lt.create_torrent(fs, piece, lt.create_torrent.v1_only)
    ct.set_priv(private)
    if tracker:
        ct.add_tracker(tracker)
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(path)))
    return ct.generate()


def capped_session(rate):
    """A session whose uploads are capped at RATE bytes/s, loopback peers included."""
    settings = dict(SETTINGS)
    if rate:
        settings["upload_rate_limit"] = rate
    ses = lt.session(settings)
    f = lt.ip_filter()  # else loopback peers are "local" and ignore the limit
    f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
    ses.set_peer_class_filter(f)
    return ses


def crowd(path, work, n, rate, secs):
    import shutil
    seed_dir = os.path.join(work, "seed")
    os.makedirs(seed_dir, exist_ok=True)
    shutil.copy(path, seed_dir)
    ti = lt.torrent_info(make_torrent(os.path.join(seed_dir, os.path.basename(path))))
    seeder = capped_session(rate)
    hs = seeder.add_torrent({"ti": ti, "save_path": seed_dir})
    t0 = time.time()
    while not hs.status().is_seeding:
        if time.time() - t0 > 60:
            sys.exit("not seeding: the data does not check")
        time.sleep(0.05)
    sessions = [capped_session(rate) for _ in range(n)]
    ports = [seeder.listen_port()] + [s.listen_port() for s in sessions]
    t0 = time.time()
    handles = []
    for i, s in enumerate(sessions):
        p = lt.add_torrent_params()
        p.ti = ti
        p.save_path = os.path.join(work, "d%d" % i)
        p.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
        handles.append(s.add_torrent(p))
    for i, h in enumerate(handles):
        for j, port in enumerate(ports):
            if j != i + 1:
                h.connect_peer(("127.0.0.1", port))
    done = {}
    while len(done) < n and time.time() - t0 < secs:
        for i, h in enumerate(handles):
            if i not in done and h.status().is_seeding:
                done[i] = time.time() - t0
                print("finished %d %.2f" % (i, done[i]), flush=True)
        time.sleep(0.05)
    if len(done) < n:
        sys.exit("timeout: %d of %d finished" % (len(done), n))


def peer(s):
    host, port = s.rsplit(":", 1)
    return (host.strip("[]"), int(port))


def main():
    cmd = sys.argv[1]
    if cmd == "infohash":
        print(lt.torrent_info(make_torrent(sys.argv[2])).info_hashes().v1)
    elif cmd == "torrent":
        url = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "-" else None
        piece = int(sys.argv[5]) if len(sys.argv) > 5 else 1 << 20
        private = len(sys.argv) > 6 and sys.argv[6] == "private"
        t = make_torrent(sys.argv[2], url, piece, private)
        open(sys.argv[3], "wb").write(lt.bencode(t))
        print(lt.torrent_info(t).info_hashes().v1)
    elif cmd == "infohash-of":
        print(lt.torrent_info(sys.argv[2]).info_hashes().v1)
    elif cmd == "torrent-default":
        fs = lt.file_storage()
        lt.add_files(fs, sys.argv[2])
        ct = lt.create_torrent(fs)
        lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(sys.argv[2])))
        t = ct.generate()
        open(sys.argv[3], "wb").write(lt.bencode(t))
        ti = lt.torrent_info(t)
        print(ti.info_hashes().v1, ti.piece_length())
    elif cmd == "seed":
        ses = capped_session(int(sys.argv[5]) if len(sys.argv) > 5 else None)
        atp = {"ti": lt.torrent_info(sys.argv[2]), "save_path": sys.argv[3]}
        if os.environ.get("LT_NO_PEX"):
            atp["flags"] = lt.torrent_flags.default_flags | lt.torrent_flags.disable_pex
        h = ses.add_torrent(atp)
        t0 = time.time()
        while not h.status().is_seeding:
            if time.time() - t0 > 30:
                print("not seeding: the data does not check", flush=True)
                sys.exit(1)
            time.sleep(0.05)
        print("seeding", ses.listen_port(), flush=True)
        time.sleep(float(sys.argv[4]))
    elif cmd == "crowd":
        crowd(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]))
    elif cmd == "get":
        source, save, secs, peers = sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5:]
        settings = dict(SETTINGS)
        boot = [p[4:] for p in peers if p.startswith("dht:")]
        if boot:
            settings["alert_mask"] |= lt.alert.category_t.dht_notification
        peers = [p for p in peers if not p.startswith("dht:")]
        if boot:
            settings.update({"enable_dht": True, "dht_bootstrap_nodes": ",".join(boot),
                             "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
                             "dht_extended_routing_table": False, "dht_ignore_dark_internet": False})
        ses = lt.session(settings)
        if boot:
            # A torrent added before the DHT node is up is looked up only on the DHT
            # announce timer (15 min); added after the bootstrap, it is looked up at once.
            t0 = time.time()
            while not any(isinstance(a, lt.dht_bootstrap_alert) for a in ses.pop_alerts()):
                if time.time() - t0 > 20:
                    print("the DHT did not bootstrap", flush=True)
                    sys.exit(1)
                time.sleep(0.05)
        if source.startswith("magnet:"):
            p = lt.parse_magnet_uri(source)
        else:
            p = lt.add_torrent_params()
            p.ti = lt.torrent_info(source)
        p.save_path = save
        p.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
        if os.environ.get("LT_NO_PEX"):  # hears of no peer through peer exchange either
            p.flags |= lt.torrent_flags.disable_pex
        h = ses.add_torrent(p)
        # Dial once the listen socket is up: the extension handshake names the port
        # (`p`) only then, and a peer that does not name it is never passed on by peer
        # exchange (libtorrent's rule, and ours).
        t0 = time.time()
        while ses.listen_port() == 0 and time.time() - t0 < 10:
            time.sleep(0.02)
        for a in peers:
            h.connect_peer(peer(a))
        started = time.time()
        # With LT_LISTENING_AFTER_A_PIECE set, said only once a piece came from the peers
        # named (or after 10 s): connected and past the handshake, so whoever comes next
        # hears of them in its first peer exchange message.
        wait_piece = bool(os.environ.get("LT_LISTENING_AFTER_A_PIECE")) and peers
        while (ses.listen_port() == 0 or (wait_piece and h.status().num_pieces == 0)) and time.time() - started < 10:
            time.sleep(0.05)
        print("listening %d" % ses.listen_port(), flush=True)
        sent, t0 = {}, started

        def count_sent():
            for pi in h.get_peer_info():
                key = "%s:%d" % pi.ip
                sent[key] = max(sent.get(key, 0), pi.total_download)

        while time.time() - t0 < secs:
            count_sent()
            for a in ses.pop_alerts():
                if a.category() & lt.alert.category_t.error_notification:
                    print("alert", a.message(), flush=True)
            s = h.status()
            if s.is_seeding:
                count_sent()  # a fast download may end between two samples
                print("metadata", s.has_metadata)
                print("done %.1f" % (time.time() - t0))
                for k, v in sorted(sent.items()):
                    print("from", k, v)
                sys.exit(0)
            time.sleep(0.05)
        s = h.status()
        print("timeout: metadata %s, progress %.3f, peers %d" % (s.has_metadata, s.progress, s.num_peers))
        sys.exit(1)


main()
