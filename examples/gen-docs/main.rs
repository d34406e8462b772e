//! Writes the generated documentation: php-fpm-rs(8) and php-fpm-rs.conf(5) under
//! `docs/man/`, and the bash, zsh and fish completions under `docs/completions/`.
//!
//! ```sh
//! cargo run --example gen-docs            # rewrite the files
//! cargo run --example gen-docs -- --check # exit 1 if a committed file is stale
//! ```
//!
//! It is an example rather than a `src/bin/` tool so that it stays out of the release
//! build and the package, and its dependencies (clap_mangen, clap_complete) are
//! dev-dependencies. `tests/generated_docs.rs` runs the same rendering and fails
//! when the committed files differ.
#![forbid(unsafe_code)]

mod render;

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = std::env::args().skip(1).any(|a| a == "--check");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = match render::generate(root) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("gen-docs: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stale = 0;
    for f in files {
        let path = root.join(&f.path);
        let current = std::fs::read(&path).ok();
        if current.as_deref() == Some(f.contents.as_slice()) {
            continue;
        }
        if check {
            eprintln!("gen-docs: {} is stale", f.path.display());
            stale += 1;
            continue;
        }
        if let Err(e) = std::fs::write(&path, &f.contents) {
            eprintln!("gen-docs: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", f.path.display());
    }
    if stale > 0 {
        eprintln!("gen-docs: run `cargo run --example gen-docs` and commit the result");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
