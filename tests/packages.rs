//! The Debian and RPM packages agree: same version, and (once built by
//! `make packages`) the same files, conffiles and directories, up to the few
//! places where the two distributions lay things out differently.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn cargo_debian_changelog_and_rpm_spec_have_the_same_version() {
    let cargo = env!("CARGO_PKG_VERSION");
    let changelog = read("debian/changelog");
    let deb = changelog
        .lines()
        .next()
        .and_then(|l| l.split_once('(')?.1.split_once(')'))
        .map(|(v, _)| v.to_string());
    let spec = read("rpm/php-fpm-rs.spec");
    let rpm = spec
        .lines()
        .find_map(|l| l.strip_prefix("Version:"))
        .map(|v| v.trim().to_string());
    assert_eq!(deb.as_deref(), Some(cargo), "debian/changelog");
    assert_eq!(rpm.as_deref(), Some(cargo), "rpm/php-fpm-rs.spec");
}

/// Runs a command and returns its standard output.
fn output(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The one file in target/pkg/ whose name starts with `prefix` and ends with `suffix`.
fn built(prefix: &str, suffix: &str) -> PathBuf {
    let dir = root().join("target/pkg");
    let found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; run `make packages` first", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{prefix}*{suffix} in {}: {found:?}",
        dir.display()
    );
    found[0].clone()
}

/// Where the distributions differ by convention, mapped to one name, or `None`
/// for files only one of them has by nature.
fn normalize(path: &str) -> Option<String> {
    // Debian 12 still ships units under /lib (merged with /usr/lib on disk).
    let path = match path.strip_prefix("/lib/systemd/") {
        Some(rest) => format!("/usr/lib/systemd/{rest}"),
        None => path.to_string(),
    };
    const DROP: &[&str] = &[
        // Debian: the license and the changelog live in the doc directory...
        "/usr/share/doc/php-fpm-rs/copyright",
        "/usr/share/doc/php-fpm-rs/changelog.gz",
        // ...RPM: in the license directory and the package header.
        "/usr/share/licenses/php-fpm-rs/",
        // RPM: build-id links to the binary.
        "/usr/lib/.build-id/",
    ];
    if DROP
        .iter()
        .any(|d| path == *d || (d.ends_with('/') && path.starts_with(d)))
    {
        return None;
    }
    // Each distribution's directory for zsh completions.
    for zsh in [
        "/usr/share/zsh/vendor-completions/",
        "/usr/share/zsh/site-functions/",
    ] {
        if let Some(rest) = path.strip_prefix(zsh) {
            return Some(format!("<zsh completions>/{rest}"));
        }
    }
    // dh_compress compresses documentation, rpm leaves it as it is.
    if path.starts_with("/usr/share/doc/") {
        return Some(path.trim_end_matches(".gz").to_string());
    }
    Some(path)
}

/// Files (not directories) of the .deb, from `dpkg-deb -c`.
fn deb_files(deb: &Path) -> BTreeSet<String> {
    output(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .filter(|l| !l.starts_with('d'))
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter_map(|p| normalize(p.trim_start_matches('.')))
        .collect()
}

/// Files (not directories) of the .rpm, from `rpm -qlp` with the file modes.
fn rpm_files(rpm: &Path) -> BTreeSet<String> {
    output(
        Command::new("rpm")
            .args(["-qp", "--qf", "[%{FILEMODES:perms} %{FILENAMES}\n]"])
            .arg(rpm),
    )
    .lines()
    .filter(|l| !l.starts_with('d'))
    .filter_map(|l| l.split_once(' ').map(|(_, p)| p))
    .filter_map(normalize)
    .collect()
}

fn diff(deb: &BTreeSet<String>, rpm: &BTreeSet<String>) -> String {
    let only_deb: Vec<&String> = deb.difference(rpm).collect();
    let only_rpm: Vec<&String> = rpm.difference(deb).collect();
    format!("only in the .deb: {only_deb:#?}\nonly in the .rpm: {only_rpm:#?}")
}

#[test]
#[ignore = "needs the packages: make packages-test"]
fn deb_and_rpm_install_the_same_files() {
    let version = env!("CARGO_PKG_VERSION");
    let deb = built(&format!("php-fpm-rs_{version}_"), ".deb");
    let rpm = built(&format!("php-fpm-rs-{version}-"), ".rpm");
    let (d, r) = (deb_files(&deb), rpm_files(&rpm));
    assert!(d.contains("/usr/sbin/php-fpm-rs"), "{d:#?}");
    assert_eq!(d, r, "{}", diff(&d, &r));

    let deb_conf: BTreeSet<String> = output(
        Command::new("dpkg-deb")
            .arg("-I")
            .arg(&deb)
            .arg("conffiles"),
    )
    .lines()
    .map(str::to_string)
    .collect();
    let rpm_conf: BTreeSet<String> = output(Command::new("rpm").arg("-qcp").arg(&rpm))
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(deb_conf, rpm_conf, "conffiles");
    assert_eq!(
        deb_conf,
        BTreeSet::from([
            "/etc/php-fpm-rs/php-fpm.conf".to_string(),
            "/etc/php-fpm-rs/pool.d/www.conf.example".to_string(),
        ])
    );

    let rpm_dirs = output(
        Command::new("rpm")
            .args(["-qp", "--qf", "[%{FILEMODES:perms} %{FILENAMES}\n]"])
            .arg(&rpm),
    );
    for dir in ["/etc/php-fpm-rs", "/etc/php-fpm-rs/pool.d"] {
        assert!(
            rpm_dirs
                .lines()
                .any(|l| l.starts_with('d') && l.ends_with(&format!(" {dir}"))),
            "the .rpm does not own {dir}"
        );
    }
}
