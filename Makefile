# php-fpm-rs: `make demo` runs a pool behind nginx on 127.0.0.1:8080; `make test` runs
# every test. Both install what they need (apt-get, as root) first.
.PHONY: demo test deps build lint bench bench-smoke bench-lint

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
