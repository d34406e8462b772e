//! A real systemd for the tests: a Debian bookworm tree (debootstrap, built once and
//! cached under /var/tmp/php-fpm-rs-nspawn, shared by concurrent tests through a
//! lock), booted with `systemd-nspawn -b` on a throw-away overlay, commands run inside
//! with `nsenter` into the guest's PID 1 namespaces. The recipe and its flags are
//! explained in DESIGN.md ("systemd in tests").
//!
//! Each [`Guest`] is its own machine: its own overlay, cgroup, network namespace
//! (loopback only) and journal; dropping it kills the guest and removes everything.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Where the cached tree and the per-boot scratch directories live.
pub const CACHE: &str = "/var/tmp/php-fpm-rs-nspawn";
/// Bump when the tree's recipe changes: a tree with another stamp is rebuilt.
const TREE_STAMP: &str = "php-fpm-rs nspawn tree v1";
/// debootstrap's part: what boots.
const BASE_PACKAGES: &str =
    "systemd,systemd-sysv,dbus,libpam-systemd,procps,iproute2,ca-certificates";
/// apt's part, from the host's own sources (bookworm-security too), so the guest's
/// libphp is the one the binary was built against.
const PACKAGES: &[&str] = &[
    "libphp8.2-embed",
    "php8.2-fpm",
    "php8.2-opcache",
    "nginx-light",
    "curl",
];
const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why the tests cannot run here, if they cannot.
pub fn missing_prerequisite() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("must run as root".into());
    }
    for tool in [
        "systemd-nspawn",
        "debootstrap",
        "nsenter",
        "chroot",
        "mount",
        "umount",
    ] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            return Some(format!(
                "{tool} is missing: run scripts/install-deps (systemd-container, debootstrap)"
            ));
        }
    }
    None
}

fn run(cmd: &mut Command) -> Result<Output> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// The first Debian mirror in the host's apt sources.
fn mirror() -> String {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(d) = fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(d.flatten().map(|e| e.path()));
    }
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        for word in text.split_whitespace() {
            if word.starts_with("http") && word.trim_end_matches('/').ends_with("/debian") {
                return word.to_string();
            }
        }
    }
    "http://deb.debian.org/debian".to_string()
}

/// The cached tree, built on first use (about a minute and a half). Concurrent
/// callers wait on a lock; the tree is never modified once built.
pub fn tree() -> Result<PathBuf> {
    let cache = Path::new(CACHE);
    fs::create_dir_all(cache).with_context(|| format!("creating {CACHE}"))?;
    let tree = cache.join("tree");
    let stamp = tree.join(".php-fpm-rs-stamp");
    let lock = fs::File::create(cache.join("tree.lock")).context("creating the tree lock")?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .context("locking the tree")?;
    if fs::read_to_string(&stamp).is_ok_and(|s| s == TREE_STAMP) {
        return Ok(tree);
    }
    let t0 = Instant::now();
    eprintln!(
        "[nspawn] building the guest tree in {} (once) ...",
        tree.display()
    );
    let tmp = cache.join("tree.tmp");
    if tmp.exists() {
        let _ = Command::new("umount").arg(tmp.join("proc")).status();
        fs::remove_dir_all(&tmp).context("removing a half-built tree")?;
    }
    let log = cache.join("build.log");
    let logf = fs::File::create(&log).context("creating build.log")?;
    let status = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            &format!("--include={BASE_PACKAGES}"),
            "bookworm",
        ])
        .arg(&tmp)
        .arg(mirror())
        .stdin(Stdio::null())
        .stdout(logf.try_clone().context("dup log")?)
        .stderr(logf)
        .status()
        .context("running debootstrap")?;
    if !status.success() {
        bail!("debootstrap failed ({status}): see {}", log.display());
    }
    // the host's sources (with bookworm-security): the guest gets the host's PHP build
    let sources = Path::new("/etc/apt/sources.list.d/debian.sources");
    if sources.exists() {
        fs::copy(sources, tmp.join("etc/apt/sources.list.d/debian.sources"))
            .context("copying debian.sources")?;
        let _ = fs::remove_file(tmp.join("etc/apt/sources.list"));
    } else {
        // a host with the one-line sources.list: debootstrap wrote bookworm only;
        // add the point-release and security updates the host's PHP comes from
        fs::write(
            tmp.join("etc/apt/sources.list.d/updates.list"),
            format!(
                "deb {} bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n",
                mirror()
            ),
        )
        .context("writing updates.list")?;
    }
    // packages' own services must not start inside the chroot
    let policy = tmp.join("usr/sbin/policy-rc.d");
    fs::write(&policy, "#!/bin/sh\nexit 101\n").context("writing policy-rc.d")?;
    fs::set_permissions(&policy, fs::Permissions::from_mode(0o755)).context("chmod")?;
    run(Command::new("mount")
        .args(["-t", "proc", "proc"])
        .arg(tmp.join("proc")))?;
    let installed = (|| -> Result<()> {
        let chroot = |args: &[&str]| -> Result<Output> {
            run(Command::new("chroot")
                .arg(&tmp)
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .env("PATH", GUEST_PATH))
        };
        chroot(&["apt-get", "update", "-qq"])?;
        let mut install = vec!["apt-get", "install", "-y", "-qq", "--no-install-recommends"];
        install.extend_from_slice(PACKAGES);
        chroot(&install)?;
        chroot(&["apt-get", "clean"])?;
        // a lean, quiet boot; the tests start nginx and the pools themselves
        chroot(&[
            "systemctl",
            "mask",
            "console-getty.service",
            "getty.target",
            "systemd-timesyncd.service",
            "apt-daily.timer",
            "apt-daily-upgrade.timer",
            "e2scrub_all.timer",
            "fstrim.timer",
        ])?;
        chroot(&[
            "systemctl",
            "disable",
            "php8.2-fpm.service",
            "nginx.service",
        ])?;
        chroot(&["ldconfig"])?;
        let ld = chroot(&["ldconfig", "-p"])?;
        if !String::from_utf8_lossy(&ld.stdout).contains("libphp.so ") {
            bail!("libphp.so is not resolvable in the guest tree");
        }
        Ok(())
    })();
    let _ = Command::new("umount").arg(tmp.join("proc")).status();
    installed?;
    fs::remove_file(&policy).context("removing policy-rc.d")?;
    fs::write(tmp.join("etc/hostname"), "fpmguest\n").context("hostname")?;
    fs::write(
        tmp.join("etc/hosts"),
        "127.0.0.1 localhost\n127.0.1.1 fpmguest\n::1 localhost\n",
    )
    .context("hosts")?;
    // a fresh machine-id at every boot
    fs::write(tmp.join("etc/machine-id"), "").context("machine-id")?;
    let jconf = tmp.join("etc/systemd/journald.conf.d");
    fs::create_dir_all(&jconf).context("journald.conf.d")?;
    fs::write(
        jconf.join("php-fpm-rs-tests.conf"),
        "[Journal]\nStorage=volatile\nRateLimitBurst=0\n",
    )
    .context("journald.conf")?;
    for dir in ["var/lib/apt/lists", "var/cache/apt/archives"] {
        if let Ok(entries) = fs::read_dir(tmp.join(dir)) {
            for e in entries.flatten() {
                if e.path().is_file() {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
    fs::write(tmp.join(".php-fpm-rs-stamp"), TREE_STAMP).context("stamp")?;
    if tree.exists() {
        fs::remove_dir_all(&tree).context("removing the old tree")?;
    }
    fs::rename(&tmp, &tree).context("moving the tree in place")?;
    eprintln!("[nspawn] tree built in {:.0?}", t0.elapsed());
    Ok(tree)
}

/// The version of `package` installed in `tree` (`None`: not installed).
#[allow(dead_code)] // tests/packages_install.rs
pub fn installed_version(tree: &Path, package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            tree.join("var/lib/dpkg").display()
        ))
        .args(["-W", "-f", "${db:Status-Status} ${Version}", package])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = text.strip_prefix("installed ")?.trim();
    (out.status.success() && !version.is_empty()).then(|| version.to_string())
}

/// Whether dpkg orders `version` at or after `min`.
fn version_at_least(version: &str, min: &str) -> bool {
    Command::new("dpkg")
        .args(["--compare-versions", version, "ge", min])
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What `tree` lacks of `needs` (package, minimum version), as "pkg: have X, need >= Y".
fn unmet(tree: &Path, needs: &[(String, String)]) -> Vec<String> {
    needs
        .iter()
        .filter_map(|(package, min)| match installed_version(tree, package) {
            Some(v) if version_at_least(&v, min) => None,
            Some(v) => Some(format!("{package}: have {v}, need >= {min}")),
            None => Some(format!("{package}: not installed, need >= {min}")),
        })
        .collect()
}

/// The cached tree ([`tree`]), with every (package, minimum version) of `needs`
/// installed: what a package built on the host depends on, since the guest has no
/// network to fetch it. The tree takes bookworm-security from the archive when it is
/// built, so it only falls behind when the host's PHP was upgraded after that: then
/// it is rebuilt. The old tree is moved aside rather than deleted, since running
/// guests may have it as their lower layer, and put back if the rebuild fails (no
/// network); trees moved aside are deleted when no guest is mounted. A rebuild that
/// did not help (the archive has no such version) is not tried again for a day.
///
/// # Errors
/// When the tree cannot be built, or lacks a package even after a rebuild.
#[allow(dead_code)] // tests/packages_install.rs
pub fn tree_with(needs: &[(String, String)]) -> Result<PathBuf> {
    let cached = tree()?;
    let missing = unmet(&cached, needs).join("; ");
    if missing.is_empty() {
        remove_stale_trees();
        return Ok(cached);
    }
    let cache = Path::new(CACHE);
    let lacks = cache.join("tree.lacks");
    let tried_today = fs::read_to_string(&lacks).is_ok_and(|s| s == missing)
        && fs::metadata(&lacks)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(86400));
    if tried_today {
        bail!(
            "the guest tree {} lacks {missing}, and a rebuild less than a day ago did \
             not help (remove {} to try again)",
            cached.display(),
            lacks.display()
        );
    }
    let lock_tree = || -> Result<nix::fcntl::Flock<fs::File>> {
        let lock = fs::File::create(cache.join("tree.lock")).context("creating the tree lock")?;
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .context("locking the tree")
    };
    let aside = {
        let _lock = lock_tree()?;
        // another test may have rebuilt it meanwhile
        if cached.exists() && !unmet(&cached, needs).is_empty() {
            let aside = cache.join(format!(
                "tree.stale-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0)
            ));
            eprintln!("[nspawn] the cached tree lacks {missing}: rebuilding it");
            fs::rename(&cached, &aside).context("moving the stale tree aside")?;
            Some(aside)
        } else {
            None
        }
    };
    let rebuilt = match tree() {
        Ok(t) => t,
        Err(e) => {
            if let Some(aside) = aside {
                let _lock = lock_tree()?;
                if !cached.exists() {
                    let _ = fs::rename(&aside, &cached);
                }
            }
            return Err(e.context("rebuilding the guest tree"));
        }
    };
    remove_stale_trees();
    let missing = unmet(&rebuilt, needs).join("; ");
    if !missing.is_empty() {
        let _ = fs::write(&lacks, &missing);
        bail!(
            "the guest tree {} still lacks {missing} after a rebuild from the archive: \
             are bookworm-updates and bookworm-security in the host's apt sources?",
            rebuilt.display()
        );
    }
    let _ = fs::remove_file(&lacks);
    Ok(rebuilt)
}

/// Deletes the trees [`tree_with`] moved aside, unless an overlay is mounted on the
/// cache (a running guest, whose lower layer may be one of them).
fn remove_stale_trees() {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if mounts.contains(&format!("lowerdir={CACHE}/")) {
        return;
    }
    let Ok(entries) = fs::read_dir(CACHE) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with("tree.stale-") {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// A booted guest. Dropping it tears it down.
pub struct Guest {
    scratch: PathBuf,
    nspawn: Option<Child>,
    leader: u32,
    cgroups: Vec<PathBuf>,
}

/// What a command inside the guest did.
#[derive(Debug)]
pub struct Ran {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

fn ppid_and_comm(pid: u32) -> Option<(u32, String)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let ppid = stat
        .get(close + 2..)?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some((ppid, comm))
}

fn child_named(parent: u32, name: &str) -> Option<u32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let (ppid, comm) = ppid_and_comm(pid)?;
        (ppid == parent && comm == name).then_some(pid)
    })
}

impl Guest {
    /// Boots a guest whose / is the cached tree plus `files` (guest path, contents),
    /// with `binds` (host path, guest path) bind-mounted read-only.
    ///
    /// # Errors
    /// When the tree cannot be built or the guest does not reach running/degraded
    /// within 60 s.
    pub fn boot(files: &[(String, Vec<u8>)], binds: &[(PathBuf, String)]) -> Result<Guest> {
        let tree = tree()?;
        let t0 = Instant::now();
        let runs = Path::new(CACHE).join("runs");
        fs::create_dir_all(&runs).context("creating runs/")?;
        sweep_stale(&runs);
        let scratch = tempfile::Builder::new()
            .prefix("guest-")
            .tempdir_in(&runs)
            .context("scratch dir")?
            .keep();
        let machine = format!(
            "fpmrs-{}-{}",
            std::process::id(),
            scratch
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("x")
                .trim_start_matches("guest-")
        );
        fs::write(scratch.join("owner"), std::process::id().to_string()).context("owner")?;
        let mut guest = Guest {
            scratch: scratch.clone(),
            nspawn: None,
            leader: 0,
            cgroups: Vec::new(),
        };
        let (t, root) = (scratch.join("t"), scratch.join("root"));
        fs::create_dir_all(&t).context("mkdir t")?;
        fs::create_dir_all(&root).context("mkdir root")?;
        // the writable layer on tmpfs: the cached tree stays untouched
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", "mode=0755,size=2g", "fpmrs"])
            .arg(&t))?;
        fs::create_dir_all(t.join("upper")).context("upper")?;
        fs::create_dir_all(t.join("work")).context("work")?;
        run(Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                tree.display(),
                t.join("upper").display(),
                t.join("work").display()
            ))
            .arg(&root))?;
        for (path, contents) in files {
            let dest = root.join(path.trim_start_matches('/'));
            if let Some(dir) = dest.parent() {
                fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
            }
            // replace symlinks (nginx's sites-enabled) instead of writing through them
            let _ = fs::remove_file(&dest);
            fs::write(&dest, contents).with_context(|| format!("writing {}", dest.display()))?;
        }
        for (_, guest_path) in binds {
            let dest = root.join(guest_path.trim_start_matches('/'));
            if !dest.exists() {
                if let Some(dir) = dest.parent() {
                    fs::create_dir_all(dir).context("mkdir bind parent")?;
                }
                fs::write(&dest, b"").context("bind target")?;
            }
        }
        // no systemd on the host to ask for a scope: nspawn gets a cgroup of its own
        // (--keep-unit means "stay in my cgroup")
        let host_has_systemd =
            fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "systemd");
        if !host_has_systemd {
            let cg = Path::new("/sys/fs/cgroup");
            let unified = nix::sys::statfs::statfs(cg)
                .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
                .unwrap_or(false);
            if unified {
                guest.cgroups.push(cg.join(&machine));
            } else {
                for h in ["unified", "systemd"] {
                    if cg.join(h).is_dir() {
                        guest.cgroups.push(cg.join(h).join(&machine));
                    }
                }
            }
            for d in &guest.cgroups {
                fs::create_dir_all(d)
                    .with_context(|| format!("creating cgroup {}", d.display()))?;
            }
        }
        let console = fs::File::create(scratch.join("console.log")).context("console.log")?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"for d in $FPMRS_CGROUPS; do echo $$ > "$d/cgroup.procs" || exit 125; done; exec "$@""#)
            .arg("sh")
            .arg("systemd-nspawn")
            .args(["-q", "-D"])
            .arg(&root)
            .args(["-M", &machine, "-b", "--register=no"]);
        if !host_has_systemd {
            cmd.arg("--keep-unit");
        }
        cmd.args([
            "--private-network",
            "--link-journal=no",
            "--resolv-conf=off",
            "--timezone=off",
            "--console=passive",
        ]);
        for (host, guest_path) in binds {
            cmd.arg(format!("--bind-ro={}:{guest_path}", host.display()));
        }
        cmd.env(
            "FPMRS_CGROUPS",
            guest
                .cgroups
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
        )
        .env("SYSTEMD_NSPAWN_UNIFIED_HIERARCHY", "1")
        .stdin(Stdio::null())
        .stdout(console.try_clone().context("dup console")?)
        .stderr(console);
        let child = cmd.spawn().context("starting systemd-nspawn")?;
        let sh_pid = child.id();
        guest.nspawn = Some(child);
        // sh execs nspawn (same pid); the guest's PID 1 is nspawn's child "systemd"
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = guest
                .nspawn
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "systemd-nspawn exited early ({status}):\n{}",
                    fs::read_to_string(scratch.join("console.log")).unwrap_or_default()
                );
            }
            if let Some(pid) = child_named(sh_pid, "systemd") {
                guest.leader = pid;
                break;
            }
            if Instant::now() > deadline {
                bail!("no guest PID 1 after 60 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        loop {
            let state = guest.exec("timeout 30 systemctl is-system-running --wait")?;
            match state.stdout.trim() {
                "running" | "degraded" => break,
                _ if Instant::now() > deadline => bail!(
                    "guest not up after 60 s (state '{}'):\n{}",
                    state.stdout.trim(),
                    fs::read_to_string(scratch.join("console.log")).unwrap_or_default()
                ),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        eprintln!("[nspawn] guest {machine} up in {:.2?}", t0.elapsed());
        Ok(guest)
    }

    /// Runs a bash snippet inside the guest as root, with a clean environment.
    ///
    /// # Errors
    /// When nsenter cannot run.
    pub fn exec(&self, script: &str) -> Result<Ran> {
        let out = Command::new("nsenter")
            .args(["-t", &self.leader.to_string(), "-a"])
            .args(["env", "-i"])
            .arg(format!("PATH={GUEST_PATH}"))
            .args([
                "HOME=/root",
                "LANG=C.UTF-8",
                "TERM=dumb",
                "SYSTEMD_PAGER=",
                "bash",
                "-c",
            ])
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .context("running nsenter")?;
        Ok(Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs a bash snippet that must succeed; returns its stdout.
    ///
    /// # Panics
    /// When it fails, with its output and the guest's recent journal.
    pub fn sh(&self, script: &str) -> String {
        let r = self.exec(script).expect("nsenter runs");
        if r.code != 0 {
            let journal = self
                .exec("journalctl -b --no-pager -n 80")
                .map(|j| j.stdout)
                .unwrap_or_default();
            panic!(
                "in the guest, `{script}` exited {}:\nstdout: {}\nstderr: {}\n--- guest journal ---\n{journal}",
                r.code, r.stdout, r.stderr
            );
        }
        r.stdout
    }

    /// Polls `check` until it returns `Some`, or panics after `timeout`.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Guest) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check(self) {
                return v;
            }
            if Instant::now() > deadline {
                let journal = self
                    .exec("journalctl -b --no-pager -n 60")
                    .map(|j| j.stdout)
                    .unwrap_or_default();
                panic!("{what}: not after {timeout:?}\n--- guest journal ---\n{journal}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        // killing the guest's PID 1 ends its whole PID namespace
        if self.leader != 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.leader as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Some(mut child) = self.nspawn.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let root = self.scratch.join("root");
        let t = self.scratch.join("t");
        for m in [&root, &t] {
            let _ = Command::new("umount").arg(m).status();
        }
        let _ = fs::remove_dir_all(&self.scratch);
        for d in &self.cgroups {
            let _ = fs::write(d.join("cgroup.kill"), "1");
            // nested cgroups the guest made, deepest first
            let mut dirs: Vec<PathBuf> = walk_dirs(d);
            dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
            for sub in dirs {
                let _ = fs::remove_dir(sub);
            }
        }
    }
}

/// Unmounts and removes the scratch directories of test processes that died without
/// tearing their guest down (killed by a timeout, Ctrl-C).
fn sweep_stale(runs: &Path) {
    let Ok(entries) = fs::read_dir(runs) else {
        return;
    };
    for e in entries.flatten() {
        let dir = e.path();
        let owner: Option<i32> = fs::read_to_string(dir.join("owner"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let alive = owner.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if alive
            || owner.is_none()
                && e.metadata().is_ok_and(|m| {
                    m.modified()
                        .is_ok_and(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(600))
                })
        {
            continue;
        }
        for m in ["root", "t"] {
            let _ = Command::new("umount").arg("-l").arg(dir.join(m)).status();
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

fn walk_dirs(d: &Path) -> Vec<PathBuf> {
    let mut out = vec![d.to_path_buf()];
    if let Ok(entries) = fs::read_dir(d) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk_dirs(&e.path()));
            }
        }
    }
    out
}
