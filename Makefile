# php-fpm-rs: `make demo` runs a pool behind nginx on 127.0.0.1:8080; `make test` runs
# every test. Both install what they need (apt-get, as root) first.
# `make packages-test` builds the .deb and the .rpm into target/pkg/, compares them, and
# installs, runs and removes the .deb in a booted Debian (systemd-nspawn).
.PHONY: demo test deps build lint pkg-deps deb rpm packages packages-test docs bench bench-smoke bench-lint

deps:
	./scripts/install-deps

build: deps
	cargo build --release

demo:
	./scripts/demo

lint: deps
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

test: deps
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo test --all-targets -- --test-threads=2

# Regenerates the man pages and shell completions from the code (tests/generated_docs.rs
# fails when this was forgotten).
docs:
	cargo run --example gen-docs

# Packaging needs more than the tests: debhelper, lintian, rpm, patchelf.
pkg-deps:
	./scripts/install-pkg-deps

# target/pkg/php-fpm-rs_VERSION_ARCH.deb (dpkg-buildpackage -us -uc -b), then lintian.
deb: pkg-deps
	./scripts/build-deb

# target/pkg/php-fpm-rs-VERSION-1.ARCH.rpm (rpmbuild, rpm/php-fpm-rs.spec).
rpm: pkg-deps
	./scripts/build-rpm

packages: deb rpm

# tests/packages.rs: the two file lists agree; tests/packages_install.rs: the .deb's
# life under a real systemd (install, socket-activated request through nginx, journal,
# remove, purge), in the guest of tests/systemd.rs, about 10 s once the tree is cached.
packages-test: packages
	cargo test --test packages -- --include-ignored
	cargo test --test packages_install -- --include-ignored --nocapture

# Benchmark against php-fpm8.2 (BENCHMARKS.md). `make bench` is the full run (about
# 20 minutes on 2 cores; installs wrk, nginx, php8.2-fpm and DokuWiki first) and
# rewrites the results part of BENCHMARKS.md. `make bench-smoke` proves the benchmark
# still works in seconds (debug builds, tiny counts) and asserts nothing about speed.
BENCH_CARGO = CARGO_TARGET_DIR=$(CURDIR)/target cargo
BENCH_MANIFEST = --manifest-path bench/loadgen/Cargo.toml

bench:
	./bench/run

bench-lint:
	cd bench/loadgen && cargo fmt -- --check
	$(BENCH_CARGO) clippy --quiet $(BENCH_MANIFEST) --all-targets -- -D warnings
	$(BENCH_CARGO) test --quiet $(BENCH_MANIFEST)

bench-smoke: bench-lint
	./bench/install-deps
	cargo build --quiet --bin php-fpm-rs
	$(BENCH_CARGO) run --quiet $(BENCH_MANIFEST) -- run --preset smoke --rs-bin target/debug/php-fpm-rs
