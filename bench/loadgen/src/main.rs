//! fpm-bench: php-fpm-rs against php-fpm8.2 on one machine, side by side.
//!
//! `fpm-bench run` is the whole benchmark (see BENCHMARKS.md); `fpm-bench load` is the
//! bare FastCGI load generator against any pool's socket, for profiling.

mod driver;
mod floor;
mod load;
mod procfs;
mod servers;
mod stats;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Benchmark php-fpm-rs against php-fpm8.2, side by side")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The benchmark: both servers, alternating rounds, ratios, results file.
    Run {
        /// smoke (seconds, proves it works), quick, or full.
        #[arg(long, default_value = "full")]
        preset: String,
        /// Override the preset's number of rounds.
        #[arg(long)]
        rounds: Option<usize>,
        /// Override pm.max_children of both pools.
        #[arg(long)]
        max_children: Option<u32>,
        /// The php-fpm-rs binary [default: <repo>/target/release/php-fpm-rs].
        #[arg(long)]
        rs_bin: Option<PathBuf>,
        /// The baseline binary.
        #[arg(long, default_value = servers::PHP_FPM)]
        fpm_bin: PathBuf,
        /// Where results files go [default: <repo>/bench/results].
        #[arg(long)]
        results: Option<PathBuf>,
        /// Do not rewrite the generated part of BENCHMARKS.md (the smoke preset never does).
        #[arg(long)]
        no_update_md: bool,
        /// Only the cases whose name contains this (e.g. "fcgi hello").
        #[arg(long)]
        only: Option<String>,
        /// Keep the scratch directory (pool files, logs).
        #[arg(long)]
        keep: bool,
    },
    /// The transport floor: a FastCGI responder without PHP (fixed hello-world answer)
    /// on a unix socket, to see what a request costs before any PHP runs.
    Floor {
        /// Socket path to bind.
        #[arg(long)]
        socket: PathBuf,
        /// Exit after this many seconds.
        #[arg(long, default_value_t = 60)]
        max_secs: u64,
    },
    /// Bare load generator: one workload against one socket; prints req/s and latency.
    Load {
        /// The pool's unix socket.
        #[arg(long)]
        socket: PathBuf,
        /// Script file to run (SCRIPT_FILENAME).
        #[arg(long)]
        script: PathBuf,
        /// Request body size in bytes (a POST when non-zero).
        #[arg(long, default_value_t = 0)]
        body: usize,
        /// Concurrent connections.
        #[arg(short, long, default_value_t = 1)]
        concurrency: usize,
        /// Requests in all.
        #[arg(short = 'n', long, default_value_t = 10_000)]
        requests: usize,
        /// FCGI_KEEP_CONN (one connection per thread) instead of a connection per request.
        #[arg(short, long)]
        keep_conn: bool,
        /// Time bound, seconds.
        #[arg(long, default_value_t = 60)]
        max_secs: u64,
    },
}

fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.join("../..").canonicalize().unwrap_or(here)
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Run {
            preset,
            rounds,
            max_children,
            rs_bin,
            fpm_bin,
            results,
            no_update_md,
            only,
            keep,
        } => {
            let repo = repo_root();
            let mut preset = driver::Preset::named(&preset)?;
            if let Some(r) = rounds {
                preset.rounds = r.max(1);
            }
            if let Some(m) = max_children {
                preset.max_children = m.max(1);
            }
            let update_md = !no_update_md && preset.name != "smoke" && only.is_none();
            driver::run(driver::RunOptions {
                preset,
                rs_bin: rs_bin.unwrap_or_else(|| repo.join("target/release/php-fpm-rs")),
                fpm_bin,
                results_dir: results.unwrap_or_else(|| repo.join("bench/results")),
                update_md,
                only,
                keep,
                repo,
            })
        }
        Cmd::Floor { socket, max_secs } => floor::serve(&socket, max_secs),
        Cmd::Load {
            socket,
            script,
            body,
            concurrency,
            requests,
            keep_conn,
            max_secs,
        } => {
            let docroot = script
                .parent()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/"));
            let uri = format!(
                "/{}",
                script.file_name().unwrap_or_default().to_string_lossy()
            );
            let (method, ctype) = if body > 0 {
                ("POST", "application/octet-stream")
            } else {
                ("GET", "")
            };
            let req = load::RequestSpec::nginx_like(
                method,
                &uri,
                &docroot,
                &script,
                ctype,
                vec![b'x'; body],
            );
            let spec = load::LoadSpec {
                socket,
                concurrency,
                requests,
                keep_conn,
                max_duration: Duration::from_secs(max_secs),
                io_timeout: Duration::from_secs(10),
            };
            let r = load::run(&spec, &req)?;
            println!(
                "{} ok, {} errors in {:.3} s: {:.0} req/s, p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, {} stdout bytes{}",
                r.ok,
                r.errors,
                r.elapsed.as_secs_f64(),
                r.rps(),
                r.percentile_us(50.0),
                r.percentile_us(99.0),
                r.percentile_us(99.9),
                r.stdout_bytes,
                r.first_error
                    .map(|e| format!(" (first error: {e})"))
                    .unwrap_or_default()
            );
            Ok(())
        }
    }
}
