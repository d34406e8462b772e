//! Compiles the C shim (src/php/shim.c) against the installed PHP headers and links
//! libphp. `PHP_CONFIG` selects the php-config to ask; the default is the one of PHP 8.2.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn php_config(bin: &str, arg: &str) -> String {
    let out = Command::new(bin).arg(arg).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `{bin} {arg}`: {e}. Install PHP's development files \
             (Debian: apt-get install php8.2-dev libphp8.2-embed) or set PHP_CONFIG"
        )
    });
    if !out.status.success() {
        panic!(
            "`{bin} {arg}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn main() {
    println!("cargo:rerun-if-env-changed=PHP_CONFIG");
    println!("cargo:rerun-if-changed=src/php/shim.c");
    println!("cargo:rerun-if-changed=src/php/shim.h");
    let bin = env::var("PHP_CONFIG").unwrap_or_else(|_| {
        if Command::new("php-config8.2")
            .arg("--version")
            .output()
            .is_ok()
        {
            "php-config8.2".into()
        } else {
            "php-config".into()
        }
    });
    let version = php_config(&bin, "--version");
    let prefix = php_config(&bin, "--prefix");
    let includes = php_config(&bin, "--includes");
    // Debian names the embed library after the PHP branch: /usr/lib/libphp8.2.so.
    let branch: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
    let libdir = PathBuf::from(&prefix).join("lib");
    let lib = format!("php{branch}");
    if !libdir.join(format!("lib{lib}.so")).exists() {
        panic!(
            "{}/lib{lib}.so not found: install the embed SAPI (Debian: apt-get install libphp{branch}-embed)",
            libdir.display()
        );
    }

    let mut build = cc::Build::new();
    build
        .file("src/php/shim.c")
        .warnings(false)
        .flag_if_supported("-Wno-unused-parameter");
    for inc in includes.split_whitespace() {
        build.include(inc.trim_start_matches("-I"));
    }
    build.compile("fpmrs_shim");

    println!("cargo:rustc-link-search=native={}", libdir.display());
    println!("cargo:rustc-link-lib=dylib={lib}");
    println!("cargo:rustc-env=PHP_FPM_RS_PHP_VERSION={version}");
    println!(
        "cargo:rustc-env=PHP_FPM_RS_LIBPHP={}/lib{lib}.so",
        libdir.display()
    );
}
