//! The committed man pages and shell completions are what the code generates today:
//! this fails when a flag, an exit status or a directive changed and
//! `cargo run --example gen-docs` was not run.
#![forbid(unsafe_code)]

#[path = "../examples/gen-docs/render.rs"]
mod render;

use std::path::Path;

#[test]
fn committed_man_pages_and_completions_match_the_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = render::generate(root).unwrap_or_else(|e| panic!("rendering failed: {e}"));
    let stale: Vec<String> = files
        .iter()
        .filter(|f| {
            std::fs::read(root.join(&f.path)).ok().as_deref() != Some(f.contents.as_slice())
        })
        .map(|f| f.path.display().to_string())
        .collect();
    assert!(
        stale.is_empty(),
        "stale generated files: {}; run `cargo run --example gen-docs` and commit them",
        stale.join(", ")
    );
}

#[test]
fn every_array_directive_the_man_page_lists_is_accepted_by_the_loader() {
    use php_fpm_rs::config::{self, LoadOptions, Section};
    for d in config::directives()
        .into_iter()
        .filter(|d| d.section == Section::Pool && d.name.ends_with("[]"))
    {
        let key = d.name.trim_end_matches("[]");
        let line = if key == "access.suppress_path" {
            format!("{key}[] = /ping")
        } else {
            format!("{key}[x] = 1")
        };
        let conf =
            format!("[www]\nlisten = 127.0.0.1:9000\npm = static\npm.max_children = 1\n{line}\n");
        if let Err(e) = config::load_str(&conf, Path::new("t.conf"), &LoadOptions::default()) {
            panic!("{}: {e}", d.name);
        }
    }
}
