//! Starting and stopping what is measured: php-fpm8.2 and php-fpm-rs with the same pool
//! settings and the same php.ini, and one nginx in front of both (one port each).

use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::procfs;

/// php.ini of both servers (Debian's php-fpm one: its conf.d loads opcache).
pub const PHP_INI: &str = "/etc/php/8.2/fpm/php.ini";
/// The baseline.
pub const PHP_FPM: &str = "/usr/sbin/php-fpm8.2";
/// `-d` settings given to both: opcache on, JIT off, whatever php.ini says.
pub const PHP_DEFINES: &[&str] = &[
    "opcache.enable=1",
    "opcache.jit=off",
    "opcache.jit_buffer_size=0",
];

/// Makes the child get SIGTERM if the benchmark dies, so nothing outlives it.
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

/// The pool settings shared by both servers.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// `pm.max_children` of the static pool.
    pub max_children: u32,
    /// `user`/`group` for the workers when the benchmark runs as root.
    pub user: Option<String>,
}

/// One running FastCGI server.
pub struct Server {
    /// "php-fpm8.2" or "php-fpm-rs".
    pub name: &'static str,
    /// Its private directory (pool.conf, socket, logs).
    pub dir: PathBuf,
    /// Its unix socket.
    pub sock: PathBuf,
    child: Child,
}

impl Server {
    /// Starts `bin` (php-fpm8.2 or php-fpm-rs, same command line) and waits until its
    /// socket answers and all workers are up.
    pub fn start(name: &'static str, bin: &Path, dir: &Path, pool: &PoolSettings) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let sock = dir.join("fpm.sock");
        let conf = dir.join("pool.conf");
        let user = pool
            .user
            .as_ref()
            .map_or(String::new(), |u| format!("user = {u}\ngroup = {u}\n"));
        std::fs::write(
            &conf,
            format!(
                "[global]\nerror_log = {d}/error.log\npid = {d}/fpm.pid\n\n\
                 [bench]\n{user}listen = {s}\nlisten.mode = 0666\nlisten.backlog = 511\n\
                 pm = static\npm.max_children = {n}\npm.max_requests = 0\n\
                 catch_workers_output = yes\n",
                d = dir.display(),
                s = sock.display(),
                n = pool.max_children,
            ),
        )?;
        let out = std::fs::File::create(dir.join("stdout.log"))?;
        let err = std::fs::File::create(dir.join("stderr.log"))?;
        let mut cmd = Command::new(bin);
        cmd.args(["-F", "-O", "-y"])
            .arg(&conf)
            .args(["-c", PHP_INI]);
        for d in PHP_DEFINES {
            cmd.args(["-d", d]);
        }
        if pool.user.is_none() && nix_is_root() {
            cmd.arg("-R");
        }
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let mut srv = Server {
            name,
            dir: dir.to_owned(),
            sock,
            child,
        };
        srv.wait_ready(pool.max_children as usize)?;
        Ok(srv)
    }

    /// The master's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let mut s = String::new();
        for f in ["stderr.log", "error.log"] {
            let t = std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
            let lines: Vec<&str> = t.lines().collect();
            for l in &lines[lines.len().saturating_sub(15)..] {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }

    fn wait_ready(&mut self, workers: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = self.child.try_wait()? {
                bail!("{} exited at start ({st}):\n{}", self.name, self.log_tail());
            }
            if UnixStream::connect(&self.sock).is_ok()
                && procfs::children(self.pid()).len() >= workers
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} not ready after 15 s:\n{}", self.name, self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Worker pids.
    pub fn workers(&self) -> Vec<u32> {
        procfs::children(self.pid())
    }

    /// Stops the pool: SIGTERM (both stop their workers at once), SIGKILL after 5 s.
    pub fn stop(&mut self) {
        let workers = self.workers();
        stop_child(&mut self.child, Duration::from_secs(5));
        for w in workers {
            // SAFETY: kill(2) on pids that were our pool's workers a moment ago.
            unsafe { libc::kill(w as i32, libc::SIGKILL) };
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether the benchmark runs as root (needed to drop workers to www-data).
pub fn is_root() -> bool {
    nix_is_root()
}

fn stop_child(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The transport floor (`fpm-bench floor`, a FastCGI responder without PHP) as a
/// backend of nginx, to show what no PHP server can beat on this machine.
pub struct Floor {
    child: Child,
    /// Its unix socket.
    pub sock: PathBuf,
}

impl Floor {
    /// Starts this binary's `floor` command on `dir/floor.sock` for at most `max_secs`.
    pub fn start(dir: &Path, max_secs: u64) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let sock = dir.join("floor.sock");
        let child = Command::new(std::env::current_exe()?)
            .arg("floor")
            .arg("--socket")
            .arg(&sock)
            .arg("--max-secs")
            .arg(max_secs.to_string())
            .stdin(Stdio::null())
            .spawn()
            .context("start the transport floor")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&sock).is_err() {
            if Instant::now() > deadline {
                bail!("the transport floor did not listen on {}", sock.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // nginx's workers (www-data) connect to it
        std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
        Ok(Floor { child, sock })
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(2));
    }
}

/// One nginx (one worker process) with a server block per backend.
pub struct Nginx {
    child: Child,
    /// Ports in the order of the backends given to [`Nginx::start`].
    pub ports: Vec<u16>,
}

/// A free loopback TCP port.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Nginx {
    /// Starts nginx on loopback, one port per socket, serving `www` (our scripts) and
    /// DokuWiki's `doku.php` from `dokuwiki`.
    pub fn start(dir: &Path, www: &Path, dokuwiki: &Path, sockets: &[&Path]) -> Result<Self> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        let mut servers = String::new();
        let mut ports = Vec::new();
        for sock in sockets {
            let port = free_port()?;
            ports.push(port);
            servers.push_str(&format!(
                r#"
    server {{
        listen 127.0.0.1:{port};
        root {www};
        location = /doku.php {{
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME {dw}/doku.php;
            fastcgi_param DOCUMENT_ROOT {dw};
            fastcgi_pass unix:{sock};
        }}
        location ~ \.php$ {{
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_pass unix:{sock};
        }}
    }}
"#,
                www = www.display(),
                dw = dokuwiki.display(),
                sock = sock.display(),
            ));
        }
        let d = dir.display();
        let user = if nix_is_root() {
            "user www-data;\n"
        } else {
            ""
        };
        let conf = format!(
            "{user}daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/nginx-error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n    access_log off;\n    keepalive_requests 1000000;\n\
             client_max_body_size 4m;\n    client_body_buffer_size 2m;\n\
             fastcgi_buffer_size 16k;\n    fastcgi_buffers 64 16k;\n\
             client_body_temp_path {d}/tmp/body;\n    fastcgi_temp_path {d}/tmp/fastcgi;\n\
             proxy_temp_path {d}/tmp/proxy;\n    uwsgi_temp_path {d}/tmp/uwsgi;\n\
             scgi_temp_path {d}/tmp/scgi;\n{servers}}}\n"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf)?;
        let err = std::fs::File::create(dir.join("nginx-stderr.log"))?;
        let mut cmd = Command::new("nginx");
        cmd.arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err);
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().context("start nginx")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        for &port in &ports {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Some(st) = child.try_wait()? {
                    bail!(
                        "nginx exited at start ({st}): {}",
                        std::fs::read_to_string(dir.join("nginx-stderr.log")).unwrap_or_default()
                    );
                }
                if Instant::now() > deadline {
                    bail!("nginx not listening on {port} after 10 s");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(Nginx { child, ports })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(5));
    }
}

/// What one wrk run reported (its `done` hook, see bench/wrk/report.lua).
#[derive(Debug, Clone, Default)]
pub struct WrkResult {
    /// Completed requests.
    pub requests: u64,
    /// Run time.
    pub duration: Duration,
    /// Socket errors, timeouts and non-2xx/3xx answers.
    pub errors: u64,
    /// Latency percentiles, microseconds.
    pub p50_us: f64,
    /// 99th.
    pub p99_us: f64,
    /// 99.9th.
    pub p999_us: f64,
}

impl WrkResult {
    /// Requests per second (errors excluded).
    pub fn rps(&self) -> f64 {
        self.requests.saturating_sub(self.errors) as f64 / self.duration.as_secs_f64().max(1e-9)
    }
}

/// Runs wrk against `url` with `connections` for `secs` seconds, one thread, and the
/// given lua script; bounded by wrk's own duration plus a kill deadline.
pub fn wrk(url: &str, connections: usize, secs: u32, script: &Path) -> Result<WrkResult> {
    // one thread: plenty for loopback, and it leaves the cores to what is measured
    let threads = 1;
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t",
        &threads.to_string(),
        "-c",
        &connections.to_string(),
        "-d",
        &format!("{secs}s"),
        "--timeout",
        "10s",
        "-s",
    ])
    .arg(script)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let child = cmd.spawn().context("start wrk")?;
    let pid = child.id();
    let limit = Duration::from_secs(u64::from(secs) + 20);
    let watchdog = std::thread::spawn(move || {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(100));
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return;
            }
        }
        // SAFETY: our own child that overran its time limit.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let out = child.wait_with_output()?;
    let _ = watchdog.join();
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(line) = text.lines().find(|l| l.starts_with("WRK ")) else {
        bail!(
            "wrk gave no result line ({}):\n{}{}",
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let mut r = WrkResult::default();
    let mut errors = 0;
    for kv in line.split_whitespace().skip(1) {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        let v: u64 = v.parse().unwrap_or(0);
        match k {
            "requests" => r.requests = v,
            "duration_us" => r.duration = Duration::from_micros(v),
            "connect" | "read" | "write" | "status" | "timeout" => errors += v,
            "p50" => r.p50_us = v as f64,
            "p99" => r.p99_us = v as f64,
            "p999" => r.p999_us = v as f64,
            _ => {}
        }
    }
    r.errors = errors;
    Ok(r)
}
