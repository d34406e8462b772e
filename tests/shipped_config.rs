//! The configuration the packages ship (conf/php-fpm.conf, conf/www.conf.example)
//! loads cleanly and mentions every directive, so the commented files stay complete
//! as directives are added.
#![forbid(unsafe_code)]

use std::path::Path;

use php_fpm_rs::config::{self, LoadOptions, Section};

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// True if `text` sets the directive, or shows it commented out (`;name =`).
fn mentions(text: &str, name: &str) -> bool {
    let key = name
        .strip_suffix("[]")
        .map_or(name.to_string(), |k| format!("{k}["));
    text.lines().any(|l| {
        let l = l.trim_start_matches(';').trim_start();
        l.strip_prefix(&key)
            .is_some_and(|rest| name.ends_with("[]") || rest.trim_start().starts_with('='))
    })
}

#[test]
fn shipped_global_file_and_pool_example_load_without_errors_or_warnings() {
    let text = format!(
        "{}\n{}",
        read("conf/php-fpm.conf"),
        read("conf/www.conf.example")
    );
    let loaded = config::load_str(&text, Path::new("php-fpm.conf"), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.pools.len(), 1);
    assert_eq!(loaded.pools[0].name, "www");
    assert_eq!(
        loaded.pools[0].listen,
        config::ListenAddress::Unix("/run/php-fpm/www.sock".into())
    );
}

#[test]
fn pool_example_mentions_every_pool_directive() {
    let text = read("conf/www.conf.example");
    let missing: Vec<&str> = config::directives()
        .into_iter()
        .filter(|d| d.section == Section::Pool && !mentions(&text, d.name))
        .map(|d| d.name)
        .collect();
    assert!(
        missing.is_empty(),
        "conf/www.conf.example lacks {missing:?}"
    );
}

#[test]
fn global_file_mentions_every_global_directive() {
    let text = read("conf/php-fpm.conf");
    let missing: Vec<&str> = config::directives()
        .into_iter()
        .filter(|d| d.section == Section::Global && !mentions(&text, d.name))
        .map(|d| d.name)
        .collect();
    assert!(missing.is_empty(), "conf/php-fpm.conf lacks {missing:?}");
}
