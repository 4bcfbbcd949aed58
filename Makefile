# p2p-share — see README.md. `make demo` runs the swarm demo, `make test` the checks.
CARGO ?= cargo

.PHONY: build test test-privileged test-bt test-net fuzz soak demo demo-ci bench clean

build:
	$(CARGO) build --release

test:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --lib --bins --test integration

# The tests `make test` reports as ignored because they need what not every machine has:
# root (a tmpfs to fill the disk) and an IPv6 loopback. CI runs them.
test-privileged:
	$(CARGO) test --test integration -- --ignored --exact \
		faults::full_disk_gives_a_clear_error_keeps_partial_and_resumes_after_space_is_freed \
		faults::a_read_only_files_folder_is_refused_before_the_first_byte \
		tracker::serves_over_ipv6

# p2p-share with real clients: libtorrent (python3-libtorrent), Transmission
# (transmission-daemon, transmission-cli) and headless Chromium (chromium).
test-bt: build
	$(CARGO) test --release --test bt

demo: build
	bash demo/run.sh

# The demo in a small, fast mode, checking its own outcome (used by CI).
demo-ci: build
	DEMO_SIZE_MIB=12 DEMO_LIMIT=2M DEMO_PORT=15000 DEMO_FIRST_PEER_PORT=16000 bash demo/run.sh --check

# The scenario across five network namespaces with shaped links (needs root, iproute2).
test-net: build
	bash tests/net/run.sh

# The property tests with many more cases (random and mutated input to every decoder).
FUZZ_CASES ?= 50000
fuzz:
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --release --test integration props

# 8 peers, 40 downloads, sources killed and restarted at random (a few minutes).
soak:
	$(CARGO) test --release --test integration soak -- --ignored --nocapture

bench:
	$(CARGO) bench --bench bench

clean:
	$(CARGO) clean
	rm -rf demo/work
