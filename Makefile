# php-fpm-rs: `make demo` runs a pool behind nginx on 127.0.0.1:8080; `make test` runs
# every test. Both install what they need (apt-get, as root) first.
.PHONY: demo test deps build lint

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
