//! The .deb's life in a booted Debian 12 (issue 5). In a systemd-nspawn guest whose
//! tree holds Debian's packages only (tests/systemd/harness.rs; none of php-fpm-rs's
//! files is copied in, only the .deb itself), tests/pkg/install-in-guest.sh runs
//! `apt-get install ./php-fpm-rs_VERSION_ARCH.deb`, adds pool `blog`, starts
//! `php-fpm@blog.socket`, sends a request through nginx, finds it in
//! `journalctl -u php-fpm@blog`, then `apt-get remove` (the pool stops, nothing else
//! does, the conffiles stay) and `apt-get purge` (they go). One "ok"/"FAIL" line per
//! check.
//!
//! Run by `make packages-test`, after `make deb`; alone:
//! `cargo test --test packages_install -- --ignored --nocapture` (builds the .deb with
//! `make deb` when target/pkg/ has none, or an older one than the sources). Needs
//! what tests/systemd.rs needs (root, systemd-nspawn, debootstrap);
//! PHP_FPM_RS_SKIP_NSPAWN=1 skips it where containers cannot run.
//!
//! The guest has no network, so its tree must already hold what the .deb depends on:
//! libphp8.2-embed at least at the version the .deb was built against (the build host's,
//! from bookworm-security). The cached tree is built from the archive with
//! bookworm-security, so it has the newest libphp of the day; a tree cached before the
//! host's PHP was upgraded is rebuilt (harness::tree_with).

#[allow(dead_code)] // the systemd tests use the rest
#[path = "systemd/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// What goes into the .deb: a change to any of them makes a built .deb stale.
const PACKAGED: &[&str] = &[
    "Cargo.toml",
    "Cargo.lock",
    "build.rs",
    "src",
    "conf",
    "units",
    "debian",
    "docs",
    "README.md",
    "LICENSE-MIT",
    "LICENSE-PHP",
];

/// The newest of the packaged files git tracks (or would), and its time.
fn newest_source() -> (PathBuf, SystemTime) {
    let out = Command::new("git")
        .current_dir(root())
        .args(["ls-files", "-co", "--exclude-standard", "-z", "--"])
        .args(PACKAGED)
        .output()
        .expect("git ls-files");
    assert!(out.status.success(), "git ls-files failed");
    out.stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let path = root().join(String::from_utf8_lossy(p).as_ref());
            let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
            Some((path, modified))
        })
        .max_by_key(|(_, t)| *t)
        .expect("packaged sources")
}

/// target/pkg/php-fpm-rs_VERSION_ARCH.deb, if there is exactly one.
fn find_deb() -> Option<PathBuf> {
    let prefix = format!("php-fpm-rs_{}_", env!("CARGO_PKG_VERSION"));
    let found: Vec<PathBuf> = std::fs::read_dir(root().join("target/pkg"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
        .collect();
    (found.len() == 1).then(|| found[0].clone())
}

/// The .deb in target/pkg/ if it is newer than every packaged source, else the one
/// `make deb` builds.
fn fresh_deb() -> PathBuf {
    let (source, changed) = newest_source();
    if let Some(deb) = find_deb() {
        let built = std::fs::metadata(&deb)
            .and_then(|m| m.modified())
            .expect("the .deb's time");
        if built >= changed {
            return deb;
        }
        eprintln!(
            "[pkg] {} is older than {}: rebuilding it",
            deb.display(),
            source.display()
        );
    }
    let t0 = Instant::now();
    let status = Command::new("make")
        .current_dir(root())
        .arg("deb")
        .status()
        .expect("running make deb");
    assert!(status.success(), "make deb failed ({status})");
    eprintln!("[pkg] make deb took {:.0?}", t0.elapsed());
    find_deb().expect("make deb leaves one .deb in target/pkg/")
}

/// The versioned dependencies of the .deb, `name (>= version)`, from its Depends
/// (alternatives, `a | b`, are left to apt).
fn versioned_depends(deb: &Path) -> Vec<(String, String)> {
    let out = Command::new("dpkg-deb")
        .arg("-f")
        .arg(deb)
        .arg("Depends")
        .output()
        .expect("dpkg-deb -f");
    assert!(out.status.success(), "dpkg-deb -f {} failed", deb.display());
    String::from_utf8_lossy(&out.stdout)
        .split(',')
        .map(str::trim)
        .filter(|d| !d.contains('|'))
        .filter_map(|d| {
            let (name, rest) = d.split_once('(')?;
            let version = rest.trim().strip_prefix(">=")?.trim_end_matches(')').trim();
            Some((name.trim().to_string(), version.to_string()))
        })
        .collect()
}

#[test]
#[ignore = "needs the .deb and a systemd-nspawn guest: make packages-test"]
fn the_deb_installs_serves_through_socket_activation_and_removes_cleanly() {
    if let Some(why) = harness::missing_prerequisite() {
        if std::env::var_os("PHP_FPM_RS_SKIP_NSPAWN").is_some() {
            eprintln!("skipped (PHP_FPM_RS_SKIP_NSPAWN): {why}");
            return;
        }
        panic!("the package test cannot run: {why} (PHP_FPM_RS_SKIP_NSPAWN=1 skips it)");
    }
    let t0 = Instant::now();
    let deb = fresh_deb();
    let name = deb
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a file name")
        .to_string();
    let needs = versioned_depends(&deb);
    assert!(
        needs.iter().any(|(p, _)| p.starts_with("libphp")),
        "the .deb depends on a versioned libphp: {needs:?}"
    );
    let tree = harness::tree_with(&needs).expect("a guest tree with the .deb's dependencies");
    for (package, min) in &needs {
        eprintln!(
            "[pkg] the .deb needs {package} >= {min}; the guest tree has {}",
            harness::installed_version(&tree, package).unwrap_or_default()
        );
    }
    assert!(
        harness::installed_version(&tree, "php-fpm-rs").is_none(),
        "the tree holds Debian's packages only"
    );

    let t_boot = Instant::now();
    let guest = harness::Guest::boot(
        &[],
        &[
            (deb.clone(), format!("/srv/pkg/{name}")),
            (
                root().join("tests/pkg/install-in-guest.sh"),
                "/srv/pkg/install-in-guest.sh".to_string(),
            ),
        ],
    )
    .expect("the guest boots");
    let booted = t_boot.elapsed();
    assert_eq!(
        guest.sh("test -e /usr/sbin/php-fpm-rs && echo present || echo absent"),
        "absent\n",
        "nothing of php-fpm-rs in the guest before the install"
    );

    let t_run = Instant::now();
    let ran = guest
        .exec(&format!(
            "timeout 300 bash /srv/pkg/install-in-guest.sh /srv/pkg/{name}"
        ))
        .expect("nsenter");
    let run = t_run.elapsed();
    eprintln!("{}", ran.stdout);
    if !ran.stderr.is_empty() {
        eprintln!("--- stderr ---\n{}", ran.stderr);
    }
    let failed: Vec<&str> = ran
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAIL"))
        .collect();
    assert!(
        failed.is_empty() && ran.code == 0,
        "install-in-guest.sh exited {}: {failed:#?}",
        ran.code
    );
    // the checks the issue names, so that a shortened script cannot pass
    for check in [
        "apt-get install",
        "start php-fpm@blog.socket",
        "request through nginx",
        "journalctl -u php-fpm@blog shows the request",
        "remove stops the pool",
        "remove stops nothing else",
        "conffiles kept",
        "conffiles removed",
    ] {
        assert!(
            ran.stdout
                .lines()
                .any(|l| l.starts_with(&format!("ok   {check}"))),
            "no 'ok   {check}' line:\n{}",
            ran.stdout
        );
    }
    eprintln!(
        "[figures] package test: guest booted in {booted:.1?}, install-in-guest.sh {run:.1?}, {:.1?} in all",
        t0.elapsed()
    );
}
