//! `.user.ini` files, as php-fpm reads them: from DOCUMENT_ROOT down to the script's
//! directory, and kept for `user_ini.cache_ttl` seconds before they are read again.
//! (tests/conformance.rs compares the settings themselves with php-fpm8.2.)

mod support;

use std::path::Path;
use std::time::Duration;

use support::{body_ok, request_with, start, wait_for};

fn precision(sock: &Path, dir: &Path) -> String {
    let root = dir.to_string_lossy();
    let r = request_with(
        sock,
        &dir.join("precision.php"),
        "",
        "GET",
        &[("DOCUMENT_ROOT", root.as_ref())],
    )
    .expect("a response");
    let (body, ok) = body_ok(&r);
    assert!(ok, "{body}");
    body
}

#[test]
fn a_changed_user_ini_is_read_again_once_its_cache_ttl_has_passed() {
    let server = start("pm = static\npm.max_children = 1\nphp_admin_value[user_ini.cache_ttl] = 2");
    let dir = server.dir.path();
    std::fs::write(
        dir.join("precision.php"),
        "<?php echo ini_get('precision');",
    )
    .expect("script");
    std::fs::write(dir.join(".user.ini"), "precision = 5\n").expect(".user.ini");
    assert_eq!(precision(&server.sock, dir), "5");

    std::fs::write(dir.join(".user.ini"), "precision = 6\n").expect(".user.ini");
    assert_eq!(
        precision(&server.sock, dir),
        "5",
        "read at most once per user_ini.cache_ttl (2 s), as php-fpm does"
    );
    wait_for(Duration::from_secs(10), "the changed .user.ini", || {
        precision(&server.sock, dir) == "6"
    });
}
