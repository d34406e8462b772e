//! The benchmark run: both servers side by side, the same cases alternating A B A B,
//! ratios with medians and spread, raw numbers and the machine to a results file, and
//! the summary into BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::load::{self, LoadSpec, RequestSpec};
use crate::procfs;
use crate::servers::{self, Floor, Nginx, PoolSettings, Server};
use crate::stats::{median, Spread};

/// What is requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `echo "Hello, world!"`.
    Hello,
    /// `phpinfo()`.
    Info,
    /// JSON encode/decode and SHA-256 over 200 items.
    Work,
    /// A 1 MiB POST body read whole.
    Post,
    /// DokuWiki's start page (Debian's `dokuwiki` package).
    DokuWiki,
}

impl Workload {
    /// All workloads.
    pub const ALL: [Workload; 5] = [
        Workload::Hello,
        Workload::Info,
        Workload::Work,
        Workload::Post,
        Workload::DokuWiki,
    ];

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Hello => "hello",
            Workload::Info => "phpinfo",
            Workload::Work => "json+hash",
            Workload::Post => "post-1MiB",
            Workload::DokuWiki => "dokuwiki",
        }
    }

    fn uri(self) -> &'static str {
        match self {
            Workload::Hello => "/hello.php",
            Workload::Info => "/info.php",
            Workload::Work => "/work.php",
            Workload::Post => "/post.php",
            Workload::DokuWiki => "/doku.php",
        }
    }

    /// The request as nginx would pass it.
    pub fn request(self, www: &Path) -> RequestSpec {
        let uri = self.uri();
        match self {
            Workload::DokuWiki => {
                let root = Path::new(DOKUWIKI);
                RequestSpec::nginx_like("GET", uri, root, &root.join("doku.php"), "", Vec::new())
            }
            Workload::Post => RequestSpec::nginx_like(
                "POST",
                uri,
                www,
                &www.join("post.php"),
                "application/octet-stream",
                post_body(),
            ),
            _ => RequestSpec::nginx_like("GET", uri, www, &www.join(&uri[1..]), "", Vec::new()),
        }
    }
}

/// Where Debian's dokuwiki package installs the application.
pub const DOKUWIKI: &str = "/usr/share/dokuwiki";

/// The 1 MiB POST body (the same bytes as bench/wrk/post.lua).
pub fn post_body() -> Vec<u8> {
    b"0123456789abcdef".repeat(65536)
}

/// One direct FastCGI case.
#[derive(Debug, Clone, Copy)]
pub struct DirectCase {
    /// What.
    pub workload: Workload,
    /// FCGI_KEEP_CONN or a new connection per request.
    pub keep_conn: bool,
    /// Connections; 0 means `max_children`.
    pub concurrency: usize,
}

/// Sizes of a run.
#[derive(Debug, Clone)]
pub struct Preset {
    /// smoke, quick or full.
    pub name: &'static str,
    /// Rounds: each case runs once per server per round.
    pub rounds: usize,
    /// `pm.max_children` of both pools.
    pub max_children: u32,
    /// Direct FastCGI cases.
    pub direct: Vec<DirectCase>,
    /// Requests per direct trial (bounded by `direct_secs` too).
    pub direct_requests: usize,
    /// Time bound of a direct trial.
    pub direct_secs: u64,
    /// Workloads through nginx.
    pub wrk_workloads: Vec<Workload>,
    /// wrk connection counts.
    pub wrk_conns: Vec<usize>,
    /// Seconds per wrk trial.
    pub wrk_secs: u32,
    /// Requests before memory is measured.
    pub memory_requests: usize,
}

impl Preset {
    /// The named preset.
    pub fn named(name: &str) -> Result<Preset> {
        let d = |workload, keep_conn, concurrency| DirectCase {
            workload,
            keep_conn,
            concurrency,
        };
        let all_direct = vec![
            d(Workload::Hello, true, 1),
            d(Workload::Hello, false, 1),
            d(Workload::Hello, true, 0),
            d(Workload::Hello, false, 0),
            d(Workload::Info, true, 0),
            d(Workload::Work, true, 0),
            d(Workload::Post, true, 0),
            d(Workload::DokuWiki, true, 0),
        ];
        Ok(match name {
            "smoke" => Preset {
                name: "smoke",
                rounds: 1,
                max_children: 2,
                direct: vec![
                    d(Workload::Hello, true, 0),
                    d(Workload::Hello, false, 0),
                    d(Workload::Post, true, 0),
                    d(Workload::DokuWiki, true, 0),
                ],
                direct_requests: 200,
                direct_secs: 2,
                wrk_workloads: vec![Workload::Hello, Workload::DokuWiki],
                wrk_conns: vec![4],
                wrk_secs: 1,
                memory_requests: 500,
            },
            "quick" => Preset {
                name: "quick",
                rounds: 3,
                max_children: 4,
                direct: all_direct,
                direct_requests: 10_000,
                direct_secs: 2,
                wrk_workloads: Workload::ALL.to_vec(),
                wrk_conns: vec![1, 16, 64],
                wrk_secs: 2,
                memory_requests: 10_000,
            },
            "full" => Preset {
                name: "full",
                rounds: 5,
                max_children: 4,
                direct: all_direct,
                direct_requests: 30_000,
                direct_secs: 4,
                wrk_workloads: Workload::ALL.to_vec(),
                wrk_conns: vec![1, 16, 64],
                wrk_secs: 4,
                memory_requests: 10_000,
            },
            other => bail!("unknown preset {other:?} (smoke, quick, full)"),
        })
    }
}

/// Options of `fpm-bench run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Sizes.
    pub preset: Preset,
    /// php-fpm-rs binary.
    pub rs_bin: PathBuf,
    /// php-fpm8.2 binary.
    pub fpm_bin: PathBuf,
    /// The repository (bench/www, bench/wrk, BENCHMARKS.md).
    pub repo: PathBuf,
    /// Where results files go.
    pub results_dir: PathBuf,
    /// Rewrite the generated part of BENCHMARKS.md.
    pub update_md: bool,
    /// Only cases whose label contains this.
    pub only: Option<String>,
    /// Keep the scratch directory.
    pub keep: bool,
}

/// One measurement of one server in one case.
#[derive(Debug, Clone, Default)]
struct Trial {
    round: usize,
    case: String,
    server: &'static str,
    ok: u64,
    errors: u64,
    secs: f64,
    rps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    cpu_ticks: u64,
    sched_ns: u64,
    machine_busy: f64,
}

impl Trial {
    /// Pool CPU (user + sys, exact on-CPU time from /proc/PID/schedstat) per successful
    /// request, microseconds.
    fn cpu_us(&self) -> f64 {
        self.sched_ns as f64 / 1000.0 / (self.ok.max(1) as f64)
    }
    /// The same from /proc/PID/stat utime + stime (clock ticks: coarse on short trials).
    fn tick_cpu_us(&self, tick_us: f64) -> f64 {
        self.cpu_ticks as f64 * tick_us / (self.ok.max(1) as f64)
    }
}

const A: &str = "php-fpm8.2";
const B: &str = "php-fpm-rs";
/// The transport floor's trials (nginx hello c=1 only).
const FLOOR: &str = "floor";

struct Bench {
    opts: RunOptions,
    dir: PathBuf,
    www: PathBuf,
    fpm: Server,
    rs: Server,
    trials: Vec<Trial>,
    log: String,
    tick_us: f64,
}

fn shell(cmd: &str) -> String {
    std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.trim().to_owned()
        })
        .unwrap_or_default()
}

/// The machine and software, for the results file.
fn machine_description(opts: &RunOptions) -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("?".to_owned(), |(_, v)| v.trim().to_owned());
    let repo = opts.repo.display();
    vec![
        ("cpu".into(), model),
        ("cores".into(), shell("nproc")),
        (
            "memory".into(),
            shell("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo"),
        ),
        ("kernel".into(), shell("uname -r")),
        (
            "os".into(),
            shell(". /etc/os-release && echo \"$PRETTY_NAME\""),
        ),
        (
            "virtualisation".into(),
            shell("systemd-detect-virt 2>/dev/null || echo unknown"),
        ),
        (
            "php-fpm8.2".into(),
            shell(&format!("{} -v | head -1", opts.fpm_bin.display())),
        ),
        (
            "php-fpm-rs".into(),
            shell(&format!(
                "cd {repo} && git rev-parse --short HEAD && git status --porcelain -- src | grep -q . && echo '(src modified)'"
            ))
            .replace('\n', " "),
        ),
        ("nginx".into(), shell("nginx -v")),
        ("wrk".into(), shell("wrk -v | head -1")),
        ("dokuwiki".into(), shell(&format!("cat {DOKUWIKI}/VERSION"))),
        ("loadavg at start".into(), procfs::loadavg()),
    ]
}

fn label_direct(c: &DirectCase, max_children: u32) -> String {
    let conc = if c.concurrency == 0 {
        max_children as usize
    } else {
        c.concurrency
    };
    format!(
        "fcgi {} {} c={conc}",
        c.workload.name(),
        if c.keep_conn { "keep-conn" } else { "new-conn" }
    )
}

fn label_wrk(w: Workload, c: usize) -> String {
    format!("nginx {} c={c}", w.name())
}

impl Bench {
    fn say(&mut self, line: &str) {
        println!("{line}");
        self.log.push_str(line);
        self.log.push('\n');
    }

    fn server(&self, name: &str) -> &Server {
        if name == A {
            &self.fpm
        } else {
            &self.rs
        }
    }

    /// One request to each server: same SAPI, opcache on, JIT off, every workload answers.
    fn sanity_check(&mut self) -> Result<()> {
        let check = RequestSpec::nginx_like(
            "GET",
            "/check.php",
            &self.www,
            &self.www.join("check.php"),
            "",
            Vec::new(),
        );
        for name in [A, B] {
            let sock = self.server(name).sock.clone();
            let out = load::fetch(&sock, &check)?;
            let text = String::from_utf8_lossy(&out);
            let line = text
                .lines()
                .find(|l| l.starts_with("sapi="))
                .unwrap_or("?")
                .to_owned();
            self.say(&format!("check {name}: {line}"));
            if !line.contains("sapi=fpm-fcgi")
                || !line.contains("opcache=on")
                || !line.contains("jit=off")
            {
                bail!("{name}: expected sapi=fpm-fcgi opcache=on jit=off, got {line:?}");
            }
            for w in Workload::ALL {
                let out = load::fetch(&sock, &w.request(&self.www))?;
                let head = String::from_utf8_lossy(&out[..out.len().min(300)]).into_owned();
                if head.to_ascii_lowercase().contains("status: 4")
                    || head.to_ascii_lowercase().contains("status: 5")
                {
                    bail!("{name}: {} answered an error:\n{head}", w.name());
                }
                if w == Workload::DokuWiki
                    && String::from_utf8_lossy(&out).contains("This topic does not exist yet")
                {
                    bail!("{name}: DokuWiki has no start page: run bench/install-deps");
                }
                if w == Workload::Post && !String::from_utf8_lossy(&out).contains("1048576 ") {
                    bail!("{name}: the POST body did not arrive whole:\n{head}");
                }
            }
        }
        Ok(())
    }

    /// 10,000 requests (all workloads in turn, kept connections) to fresh pools, then
    /// master RSS and per-worker PSS.
    fn memory(&mut self) -> Result<Vec<(String, f64, f64)>> {
        let n = self.opts.preset.memory_requests;
        let per = n / Workload::ALL.len();
        let mut rows = Vec::new();
        let mut measured = Vec::new();
        for name in [A, B] {
            let sock = self.server(name).sock.clone();
            for w in Workload::ALL {
                let spec = LoadSpec {
                    socket: sock.clone(),
                    concurrency: self.opts.preset.max_children as usize,
                    requests: per,
                    keep_conn: true,
                    max_duration: Duration::from_secs(120),
                    io_timeout: Duration::from_secs(20),
                };
                let r = load::run(&spec, &w.request(&self.www))?;
                if r.errors > 0 {
                    bail!(
                        "{name}: {} errors in the memory phase ({}): {}",
                        r.errors,
                        w.name(),
                        r.first_error.unwrap_or_default()
                    );
                }
            }
            // memory at rest: php-fpm-rs workers give back what large requests grew
            // after 1 s without a connection (php-fpm's keep what they hold)
            std::thread::sleep(Duration::from_secs(2));
            let srv = self.server(name);
            let master = procfs::rss_kib(srv.pid()).unwrap_or(0);
            let master_pss = procfs::pss_kib(srv.pid()).unwrap_or(0);
            let pss: Vec<f64> = srv
                .workers()
                .iter()
                .filter_map(|&p| procfs::pss_kib(p))
                .map(|k| k as f64)
                .collect();
            let rss: Vec<f64> = srv
                .workers()
                .iter()
                .filter_map(|&p| procfs::rss_kib(p))
                .map(|k| k as f64)
                .collect();
            let uss: Vec<f64> = srv
                .workers()
                .iter()
                .filter_map(|&p| procfs::uss_kib(p))
                .map(|k| k as f64)
                .collect();
            let master_uss = procfs::uss_kib(srv.pid()).unwrap_or(0);
            self.say(&format!(
                "memory {name}: after {} requests: master RSS {master} KiB (PSS {master_pss}, USS {master_uss}), worker PSS {:?} KiB, worker USS {:?} KiB, worker RSS {:?} KiB",
                per * Workload::ALL.len(),
                pss,
                uss,
                rss
            ));
            measured.push([
                master as f64,
                median(&pss),
                master_uss as f64,
                median(&uss),
                median(&rss),
            ]);
        }
        let (a, b) = (measured[0], measured[1]);
        for (i, what) in [
            "master RSS (KiB)",
            "worker PSS, median (KiB)",
            "master USS (private, KiB)",
            "worker USS (private), median (KiB)",
            "worker RSS, median (KiB)",
        ]
        .into_iter()
        .enumerate()
        {
            rows.push((what.to_owned(), a[i], b[i]));
        }
        Ok(rows)
    }

    fn measure<F>(&mut self, round: usize, case: &str, name: &'static str, run: F) -> Result<()>
    where
        F: FnOnce(&Self) -> Result<Trial>,
    {
        let pid = self.server(name).pid();
        let (busy0, total0) = procfs::machine_jiffies();
        let c0 = procfs::tree_cpu(pid);
        let mut t = run(self)?;
        let c1 = procfs::tree_cpu(pid);
        let (busy1, total1) = procfs::machine_jiffies();
        t.round = round;
        t.case = case.to_owned();
        t.server = name;
        t.cpu_ticks = c1.ticks.saturating_sub(c0.ticks);
        t.sched_ns = c1.sched_ns.saturating_sub(c0.sched_ns);
        t.machine_busy = (busy1 - busy0) as f64 / ((total1 - total0).max(1)) as f64;
        let line = format!(
            "  r{round} {case:<32} {name:<10} {:>9.0} req/s  p50 {:>7.0} µs  p99 {:>7.0} µs  p99.9 {:>7.0} µs  cpu {:>6.1} µs/req  err {}",
            t.rps,
            t.p50,
            t.p99,
            t.p999,
            t.cpu_us(),
            t.errors
        );
        self.say(&line);
        if t.ok == 0 {
            bail!("{name}: no request succeeded in {case}");
        }
        self.trials.push(t);
        Ok(())
    }

    fn direct_trial(&self, c: &DirectCase, name: &str) -> Result<Trial> {
        let p = &self.opts.preset;
        let conc = if c.concurrency == 0 {
            p.max_children as usize
        } else {
            c.concurrency
        };
        let spec = LoadSpec {
            socket: self.server(name).sock.clone(),
            concurrency: conc,
            requests: p.direct_requests,
            keep_conn: c.keep_conn,
            max_duration: Duration::from_secs(p.direct_secs),
            io_timeout: Duration::from_secs(10),
        };
        let r = load::run(&spec, &c.workload.request(&self.www))?;
        if let Some(e) = &r.first_error {
            eprintln!("  {name}: {} errors, first: {e}", r.errors);
        }
        Ok(Trial {
            ok: r.ok as u64,
            errors: r.errors as u64,
            secs: r.elapsed.as_secs_f64(),
            rps: r.rps(),
            p50: r.percentile_us(50.0),
            p99: r.percentile_us(99.0),
            p999: r.percentile_us(99.9),
            ..Trial::default()
        })
    }

    fn wrk_trial(&self, url: &str, conns: usize, script: &Path) -> Result<Trial> {
        let r = servers::wrk(url, conns, self.opts.preset.wrk_secs, script)?;
        Ok(Trial {
            ok: r.requests.saturating_sub(r.errors),
            errors: r.errors,
            secs: r.duration.as_secs_f64(),
            rps: r.rps(),
            p50: r.p50_us,
            p99: r.p99_us,
            p999: r.p999_us,
            ..Trial::default()
        })
    }

    fn wanted(&self, label: &str) -> bool {
        self.opts
            .only
            .as_deref()
            .map_or(true, |o| label.contains(o))
    }
}

/// Who goes first in a round: A B in odd rounds, B A in even ones, so that neither
/// server always runs right after the other (or right after a case change).
fn order(round: usize) -> [&'static str; 2] {
    if round % 2 == 1 {
        [A, B]
    } else {
        [B, A]
    }
}

/// Runs the whole benchmark.
pub fn run(opts: RunOptions) -> Result<()> {
    let started = Instant::now();
    let stamp = shell("date -u +%Y%m%d-%H%M%S");
    let dir = PathBuf::from(format!("/tmp/fpm-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    set_mode(&dir, 0o755)?;
    let www = dir.join("www");
    std::fs::create_dir_all(&www)?;
    for f in std::fs::read_dir(opts.repo.join("bench/www"))? {
        let f = f?;
        std::fs::copy(f.path(), www.join(f.file_name()))?;
    }
    for (name, post) in [("get.lua", false), ("post.lua", true)] {
        let mut s = String::new();
        if post {
            s.push_str(&std::fs::read_to_string(
                opts.repo.join("bench/wrk/post.lua"),
            )?);
        }
        s.push_str(&std::fs::read_to_string(
            opts.repo.join("bench/wrk/report.lua"),
        )?);
        std::fs::write(dir.join(name), s)?;
    }
    if !Path::new(DOKUWIKI).join("doku.php").exists() {
        bail!("DokuWiki is not installed: run bench/install-deps");
    }
    let machine = machine_description(&opts);
    let pool = PoolSettings {
        max_children: opts.preset.max_children,
        user: servers::is_root().then(|| "www-data".to_owned()),
    };
    println!(
        "fpm-bench: preset {}, {} rounds, pm static max_children {}, scratch {}",
        opts.preset.name,
        opts.preset.rounds,
        pool.max_children,
        dir.display()
    );
    let fpm = Server::start(A, &opts.fpm_bin, &dir.join("fpm"), &pool)?;
    let rs = Server::start(B, &opts.rs_bin, &dir.join("rs"), &pool)?;
    let floor = Floor::start(&dir.join("floor"), 3 * 3600)?;
    let nginx = Nginx::start(
        &dir.join("nginx"),
        &www,
        Path::new(DOKUWIKI),
        &[&fpm.sock, &rs.sock, &floor.sock],
    )?;
    let mut bench = Bench {
        opts,
        dir: dir.clone(),
        www,
        fpm,
        rs,
        trials: Vec::new(),
        log: String::new(),
        tick_us: 1e6 / procfs::clock_ticks() as f64,
    };
    bench.sanity_check()?;
    let memory = bench.memory()?;

    let preset = bench.opts.preset.clone();
    for round in 1..=preset.rounds {
        bench.say(&format!(
            "round {round}/{} (loadavg {})",
            preset.rounds,
            procfs::loadavg()
        ));
        for c in &preset.direct {
            let label = label_direct(c, preset.max_children);
            if !bench.wanted(&label) {
                continue;
            }
            for name in order(round) {
                bench.measure(round, &label, name, |b| b.direct_trial(c, name))?;
            }
        }
        for &w in &preset.wrk_workloads {
            for &conns in &preset.wrk_conns {
                let label = label_wrk(w, conns);
                if !bench.wanted(&label) {
                    continue;
                }
                let script = bench.dir.join(if w == Workload::Post {
                    "post.lua"
                } else {
                    "get.lua"
                });
                for name in order(round) {
                    let port = nginx.ports[usize::from(name == B)];
                    let url = format!("http://127.0.0.1:{port}{}", w.uri());
                    bench.measure(round, &label, name, |b| b.wrk_trial(&url, conns, &script))?;
                }
                if w == Workload::Hello && conns == 1 {
                    // the same path with no PHP at all: the best any server could do
                    let url = format!("http://127.0.0.1:{}{}", nginx.ports[2], w.uri());
                    let mut t = bench.wrk_trial(&url, conns, &script)?;
                    t.round = round;
                    t.case = label.clone();
                    t.server = FLOOR;
                    bench.say(&format!(
                        "  r{round} {label:<32} {FLOOR:<10} {:>9.0} req/s  p50 {:>7.0} µs  p99 {:>7.0} µs",
                        t.rps, t.p50, t.p99
                    ));
                    bench.trials.push(t);
                }
            }
        }
    }
    let loadavg_end = procfs::loadavg();
    drop(nginx);
    drop(floor);
    bench.fpm.stop();
    bench.rs.stop();

    let report = Report::new(&bench, &memory);
    let mut table = report.table();
    if bench.opts.preset.name == "smoke" {
        table.insert_str(
            0,
            "SMOKE RUN: proves the benchmark works end to end; tiny counts, the numbers mean nothing.\n\n",
        );
    }
    println!("\n{table}");
    let elapsed = started.elapsed().as_secs();
    std::fs::create_dir_all(&bench.opts.results_dir)?;
    let results = bench
        .opts
        .results_dir
        .join(format!("{stamp}-{}.txt", bench.opts.preset.name));
    let mut raw = String::new();
    let _ = writeln!(
        raw,
        "# fpm-bench results, preset {}, {stamp} UTC, {elapsed} s",
        bench.opts.preset.name
    );
    for (k, v) in &machine {
        let _ = writeln!(raw, "# {k}: {v}");
    }
    let _ = writeln!(raw, "# loadavg at end: {loadavg_end}");
    let _ = writeln!(
        raw,
        "# pools: pm static, max_children {}, unix sockets, php.ini {} with -d {}",
        bench.opts.preset.max_children,
        servers::PHP_INI,
        servers::PHP_DEFINES.join(" -d ")
    );
    let _ = writeln!(raw, "# clock tick {} µs", bench.tick_us);
    let _ = writeln!(raw, "\n## summary\n{table}");
    let _ = writeln!(raw, "## log\n{}", bench.log);
    let _ = writeln!(
        raw,
        "## raw trials\nround\tcase\tserver\tok\terrors\tsecs\treq_per_s\tp50_us\tp99_us\tp999_us\tcpu_ticks\tstat_cpu_us_per_req\tsched_cpu_us_per_req\tmachine_busy"
    );
    for t in &bench.trials {
        let _ = writeln!(
            raw,
            "{}\t{}\t{}\t{}\t{}\t{:.3}\t{:.1}\t{:.1}\t{:.1}\t{:.1}\t{}\t{:.2}\t{:.2}\t{:.3}",
            t.round,
            t.case,
            t.server,
            t.ok,
            t.errors,
            t.secs,
            t.rps,
            t.p50,
            t.p99,
            t.p999,
            t.cpu_ticks,
            t.tick_cpu_us(bench.tick_us),
            t.cpu_us(),
            t.machine_busy
        );
    }
    std::fs::write(&results, raw)?;
    println!("raw numbers and machine: {}", results.display());
    if bench.opts.update_md {
        update_benchmarks_md(&bench, &machine, &table, &results, &stamp)?;
    }
    if !bench.opts.keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!("fpm-bench: done in {elapsed} s");
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", p.display()))
}

/// Per-case ratios.
struct Row {
    case: String,
    rps_a: f64,
    rps_b: f64,
    rps_ratio: Spread,
    p99_a: f64,
    p99_b: f64,
    p99_ratio: Spread,
    p50_ratio: Spread,
    p999_ratio: Spread,
    cpu_a: f64,
    cpu_b: f64,
    cpu_ratio: Spread,
    cv_a: f64,
    cv_b: f64,
    errors: u64,
}

struct Report {
    rows: Vec<Row>,
    /// Per case measured against the floor: (case, floor req/s, floor/8.2, rs/8.2).
    floor: Vec<(String, f64, Spread, Spread)>,
    memory: Vec<(String, f64, f64)>,
    rounds: usize,
}

impl Report {
    fn new(bench: &Bench, memory: &[(String, f64, f64)]) -> Report {
        let mut cases: Vec<String> = Vec::new();
        for t in &bench.trials {
            if !cases.contains(&t.case) {
                cases.push(t.case.clone());
            }
        }
        let mut rows = Vec::new();
        for case in cases {
            let of = |s: &str| -> Vec<&Trial> {
                bench
                    .trials
                    .iter()
                    .filter(|t| t.case == case && t.server == s)
                    .collect()
            };
            let (a, b) = (of(A), of(B));
            let pairs: Vec<(&Trial, &Trial)> = a
                .iter()
                .flat_map(|x| {
                    b.iter()
                        .filter(|y| y.round == x.round)
                        .map(move |y| (*x, *y))
                })
                .collect();
            let ratio = |f: &dyn Fn(&Trial) -> f64| {
                Spread::of(&pairs.iter().map(|(x, y)| f(y) / f(x)).collect::<Vec<_>>())
            };
            let med = |v: &[&Trial], f: &dyn Fn(&Trial) -> f64| {
                median(&v.iter().map(|t| f(t)).collect::<Vec<_>>())
            };
            let cv = |v: &[&Trial]| {
                let xs: Vec<f64> = v.iter().map(|t| t.rps).collect();
                crate::stats::cv(&xs)
            };
            rows.push(Row {
                rps_a: med(&a, &|t| t.rps),
                rps_b: med(&b, &|t| t.rps),
                rps_ratio: ratio(&|t| t.rps),
                p99_a: med(&a, &|t| t.p99),
                p99_b: med(&b, &|t| t.p99),
                p99_ratio: ratio(&|t| t.p99),
                p50_ratio: ratio(&|t| t.p50),
                p999_ratio: ratio(&|t| t.p999),
                cpu_a: med(&a, &|t| t.cpu_us()),
                cpu_b: med(&b, &|t| t.cpu_us()),
                cpu_ratio: ratio(&|t| t.cpu_us()),
                cv_a: cv(&a),
                cv_b: cv(&b),
                errors: a.iter().chain(b.iter()).map(|t| t.errors).sum(),
                case,
            });
        }
        let mut floor = Vec::new();
        for row in &rows {
            let of = |s: &str| -> Vec<&Trial> {
                bench
                    .trials
                    .iter()
                    .filter(|t| t.case == row.case && t.server == s)
                    .collect()
            };
            let (a, f) = (of(A), of(FLOOR));
            let ratios: Vec<f64> = f
                .iter()
                .filter_map(|ft| {
                    a.iter()
                        .find(|at| at.round == ft.round)
                        .map(|at| ft.rps / at.rps)
                })
                .collect();
            if !ratios.is_empty() {
                let rps = median(&f.iter().map(|t| t.rps).collect::<Vec<_>>());
                floor.push((row.case.clone(), rps, Spread::of(&ratios), row.rps_ratio));
            }
        }
        Report {
            rows,
            floor,
            memory: memory.to_vec(),
            rounds: bench.opts.preset.rounds,
        }
    }

    /// Goals of issue 6, judged on this run's medians.
    fn goals(&self) -> Vec<(String, Option<bool>, String)> {
        let mut g = Vec::new();
        let mut fcgi_hello: Vec<&Row> = self
            .rows
            .iter()
            .filter(|r| r.case.starts_with("fcgi hello") && !r.case.ends_with("c=1"))
            .collect();
        if fcgi_hello.is_empty() {
            fcgi_hello = self
                .rows
                .iter()
                .filter(|r| r.case.starts_with("fcgi hello"))
                .collect();
        }
        // a req/s goal: at least `min`, with p99 lower (direct) or no worse (nginx)
        let speed = |r: &Row, min: f64, p99_lower: bool| {
            let p99_ok = if p99_lower {
                r.p99_ratio.median < 1.0
            } else {
                r.p99_ratio.median <= 1.0
            };
            (
                format!(
                    "{}: ≥ {min:.1}x req/s, {}",
                    r.case,
                    if p99_lower {
                        "lower p99"
                    } else {
                        "p99 no worse"
                    }
                ),
                Some(r.rps_ratio.median >= min && p99_ok),
                format!(
                    "{:.2}x req/s, p99 {:.2}x",
                    r.rps_ratio.median, r.p99_ratio.median
                ),
            )
        };
        g.extend(fcgi_hello.into_iter().map(|r| speed(r, 1.5, true)));
        for (prefix, min) in [("nginx hello", 1.1), ("nginx dokuwiki", 1.0)] {
            g.extend(
                self.rows
                    .iter()
                    .filter(|r| r.case.starts_with(prefix))
                    .map(|r| speed(r, min, false)),
            );
        }
        let worst = self
            .rows
            .iter()
            .max_by(|x, y| x.cpu_ratio.median.total_cmp(&y.cpu_ratio.median));
        if let Some(w) = worst {
            let over: Vec<String> = self
                .rows
                .iter()
                .filter(|r| r.cpu_ratio.median >= 1.0)
                .map(|r| format!("{} {:.3}x", r.case, r.cpu_ratio.median))
                .collect();
            g.push((
                "CPU per request lower on every case".to_owned(),
                Some(over.is_empty()),
                if over.is_empty() {
                    format!("worst {} {:.3}x", w.case, w.cpu_ratio.median)
                } else {
                    format!("not lower: {}", over.join(", "))
                },
            ));
        }
        for (what, a, b) in self.memory.iter().take(4) {
            g.push((
                format!("{what}: no more than php-fpm8.2"),
                Some(b <= a),
                format!("{:.0} vs {:.0} KiB ({:.2}x)", b, a, b / a),
            ));
        }
        g
    }

    fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Ratios are php-fpm-rs / php-fpm8.2: median of {} alternating rounds (A B, then B A, ...) [min–max]. \
             req/s: higher is better; p99 and CPU: lower is better.\n",
            self.rounds
        );
        let _ = writeln!(
            s,
            "| case | req/s 8.2 | req/s rs | req/s ratio | p50 ratio | p99 ratio | p99.9 ratio | p99 µs 8.2 / rs | CPU µs/req 8.2 / rs | CPU ratio | CV 8.2 / rs | errors |"
        );
        let _ = writeln!(s, "|---|---:|---:|---|---|---|---|---|---|---|---|---:|");
        let pct = |x: f64| {
            if x.is_finite() {
                format!("{:.1}%", x * 100.0)
            } else {
                "–".to_owned()
            }
        };
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {:.0} | {:.0} | {} | {} | {} | {} | {:.0} / {:.0} | {:.1} / {:.1} | {} | {} / {} | {} |",
                r.case,
                r.rps_a,
                r.rps_b,
                r.rps_ratio,
                r.p50_ratio,
                r.p99_ratio,
                r.p999_ratio,
                r.p99_a,
                r.p99_b,
                r.cpu_a,
                r.cpu_b,
                r.cpu_ratio,
                pct(r.cv_a),
                pct(r.cv_b),
                r.errors
            );
        }
        if !self.floor.is_empty() {
            let _ = writeln!(
                s,
                "\nThe transport floor: the same nginx path to `fpm-bench floor`, a FastCGI \
                 responder with no PHP, in the same rounds. No PHP server can beat it here.\n\n\
                 | case | floor req/s | floor / php-fpm8.2 | php-fpm-rs / php-fpm8.2 |\n|---|---:|---|---|"
            );
            for (case, rps, f, r) in &self.floor {
                let _ = writeln!(s, "| {case} | {rps:.0} | {f} | {r} |");
            }
        }
        let _ = writeln!(
            s,
            "\n| memory | php-fpm8.2 | php-fpm-rs | ratio |\n|---|---:|---:|---:|"
        );
        for (what, a, b) in &self.memory {
            let _ = writeln!(s, "| {what} | {a:.0} | {b:.0} | {:.2} |", b / a);
        }
        let cvs: Vec<f64> = self
            .rows
            .iter()
            .flat_map(|r| [r.cv_a, r.cv_b])
            .filter(|x| x.is_finite())
            .collect();
        if !cvs.is_empty() {
            let _ = writeln!(
                s,
                "\nNoise: req/s coefficient of variation across rounds, median {:.1}%, worst {:.1}%.",
                median(&cvs) * 100.0,
                cvs.iter().copied().fold(0.0, f64::max) * 100.0
            );
        }
        let _ = writeln!(s, "\n| goal | met | measured |\n|---|---|---|");
        for (what, met, got) in self.goals() {
            let m = match met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "?",
            };
            let _ = writeln!(s, "| {what} | {m} | {got} |");
        }
        s
    }
}

const MD_BEGIN: &str =
    "<!-- fpm-bench:begin (generated by `make bench`; edits here are overwritten) -->";
const MD_END: &str = "<!-- fpm-bench:end -->";

fn update_benchmarks_md(
    bench: &Bench,
    machine: &[(String, String)],
    table: &str,
    results: &Path,
    stamp: &str,
) -> Result<()> {
    let path = bench.opts.repo.join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let mut gen = String::new();
    let _ = writeln!(gen, "{MD_BEGIN}\n");
    let _ = writeln!(
        gen,
        "Last run: preset `{}`, {stamp} UTC, raw numbers in `{}` (not committed).\n",
        bench.opts.preset.name,
        results
            .strip_prefix(&bench.opts.repo)
            .unwrap_or(results)
            .display()
    );
    let _ = writeln!(gen, "Machine:\n");
    for (k, v) in machine {
        let _ = writeln!(gen, "- {k}: {v}");
    }
    let _ = writeln!(gen, "\n{table}\n{MD_END}");
    let new = match (old.find(MD_BEGIN), old.find(MD_END)) {
        (Some(b), Some(e)) if e > b => {
            format!(
                "{}{}{}",
                &old[..b],
                gen.trim_end(),
                &old[e + MD_END.len()..]
            )
        }
        _ => format!("{}\n## Latest results\n\n{gen}", old.trim_end()),
    };
    std::fs::write(&path, new)?;
    println!("updated {}", path.display());
    Ok(())
}
