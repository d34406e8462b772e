//! The process manager, seen from outside: worker counts over time for each `pm`
//! mode, recycling on `pm.max_requests`, `request_terminate_timeout`, workers dying
//! mid-request, emergency restart, and reloads under load, with php-fpm's log lines.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::{body_ok, count, start, start_with, wait_for, Server};

/// Samples the master's worker count every 20 ms while `f` runs.
fn sample_counts<T>(server: &Server, f: impl FnOnce() -> T) -> (T, Vec<usize>) {
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let pid = server.pid();
    let sampler = {
        let (stop, samples) = (Arc::clone(&stop), Arc::clone(&samples));
        std::thread::spawn(move || {
            // bounded: at most 60 s of samples
            for _ in 0..3000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let n = support::children_listed(pid).len();
                samples.lock().expect("samples").push(n);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let out = f();
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let v = samples.lock().expect("samples").clone();
    (out, v)
}

#[test]
fn static_holds_its_count_under_load() {
    let server = start("pm = static\npm.max_children = 3");
    assert_eq!(server.workers().len(), 3);
    let (failures, counts) = sample_counts(&server, || {
        let mut fails = 0;
        for _ in 0..200 {
            if !server.get("hello.php", "").is_ok_and(|r| body_ok(&r).1) {
                fails += 1;
            }
        }
        fails
    });
    assert_eq!(failures, 0);
    assert!(
        counts.iter().all(|&n| n == 3),
        "static must stay at 3: {counts:?}"
    );
    assert_eq!(
        count(&server.log(), "] child "),
        3,
        "only the three starts: {}",
        server.log()
    );
}

#[test]
fn dynamic_grows_to_max_children_under_load_and_shrinks_to_the_spare_bound() {
    let server = start(
        "pm = dynamic\npm.max_children = 6\npm.start_servers = 2\npm.min_spare_servers = 2\npm.max_spare_servers = 3",
    );
    wait_for(Duration::from_secs(5), "2 start servers", || {
        server.workers().len() == 2
    });
    let ok = Arc::new(AtomicUsize::new(0));
    let ((), counts) = sample_counts(&server, || {
        // eight 4 s requests at once: more than max_children can take
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (sock, script, ok) = (
                    server.sock.clone(),
                    server.script("sleep.php"),
                    Arc::clone(&ok),
                );
                std::thread::spawn(move || {
                    if let Ok(r) = support::request(&sock, &script, "ms=4000") {
                        if body_ok(&r).1 {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("client");
        }
    });
    assert_eq!(
        ok.load(Ordering::Relaxed),
        8,
        "every queued request is served"
    );
    let peak = counts.iter().copied().max().unwrap_or(0);
    assert_eq!(
        peak, 6,
        "grows up to pm.max_children and not beyond: {counts:?}"
    );
    let log = server.log();
    assert_eq!(
        count(
            &log,
            "WARNING: [pool t] server reached pm.max_children setting (6), consider raising it"
        ),
        1,
        "logged once for the episode: {log}"
    );
    // idle now: one worker leaves per second until max_spare_servers remain
    wait_for(
        Duration::from_secs(10),
        "shrinking to 3 idle workers",
        || server.workers().len() == 3,
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(server.workers().len(), 3, "holds at max_spare_servers");
}

#[test]
fn ondemand_starts_empty_forks_on_connection_and_returns_to_zero() {
    let server = start("pm = ondemand\npm.max_children = 4\npm.process_idle_timeout = 2s");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        server.workers().is_empty(),
        "no worker before the first connection"
    );
    let t0 = Instant::now();
    let r = server.get("hello.php", "").expect("first request");
    let first = t0.elapsed();
    assert!(body_ok(&r).1);
    assert_eq!(server.workers().len(), 1, "one worker for one connection");
    // three at once: forks up to three workers
    let ((), counts) = sample_counts(&server, || {
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (sock, script) = (server.sock.clone(), server.script("sleep.php"));
                std::thread::spawn(move || {
                    let r = support::request(&sock, &script, "ms=1000").expect("request");
                    assert!(body_ok(&r).1);
                })
            })
            .collect();
        for t in threads {
            t.join().expect("client");
        }
    });
    assert_eq!(counts.iter().copied().max(), Some(3), "{counts:?}");
    let idle_since = Instant::now();
    wait_for(Duration::from_secs(8), "back to zero workers", || {
        server.workers().is_empty()
    });
    let back = idle_since.elapsed();
    assert!(
        back >= Duration::from_millis(1800),
        "not before pm.process_idle_timeout: {back:?}"
    );
    eprintln!("ondemand: first request {first:?} (fork included), back to zero after {back:?}");
    let r = server.get("hello.php", "").expect("served again from zero");
    assert!(body_ok(&r).1);
}

#[test]
fn max_requests_recycles_with_spread_and_no_failed_request() {
    let server = start("pm = static\npm.max_children = 8\npm.max_requests = 50");
    let first_gen = server.workers();
    assert_eq!(first_gen.len(), 8);
    // completion order of every response: (global index, worker pid)
    let timeline = Arc::new(Mutex::new(Vec::<u32>::new()));
    let failures = Arc::new(AtomicUsize::new(0));
    let ((), counts) = sample_counts(&server, || {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (sock, script) = (server.sock.clone(), server.script("hello.php"));
                let (timeline, failures) = (Arc::clone(&timeline), Arc::clone(&failures));
                std::thread::spawn(move || {
                    for _ in 0..150 {
                        match support::request(&sock, &script, "") {
                            Ok(r) => {
                                let (body, ok) = body_ok(&r);
                                let pid = body.trim_start_matches("hi ").parse().unwrap_or(0);
                                if !ok || pid == 0 {
                                    failures.fetch_add(1, Ordering::Relaxed);
                                }
                                timeline.lock().expect("timeline").push(pid);
                            }
                            Err(_) => {
                                failures.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("client");
        }
    });
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "no request fails while workers recycle"
    );
    let timeline = timeline.lock().expect("timeline").clone();
    assert_eq!(timeline.len(), 1200);
    // each first-generation worker served exactly its own limit, within [38, 50]
    let served: Vec<usize> = first_gen
        .iter()
        .map(|p| timeline.iter().filter(|&&t| t == *p).count())
        .collect();
    assert!(
        served.iter().all(|&n| (38..=50).contains(&n)),
        "limits stay within the documented spread: {served:?}"
    );
    let last_index: Vec<usize> = first_gen
        .iter()
        .filter_map(|p| timeline.iter().rposition(|t| t == p))
        .collect();
    let spread = last_index.iter().max().unwrap_or(&0) - last_index.iter().min().unwrap_or(&0);
    let distinct: std::collections::BTreeSet<_> = served.iter().collect();
    assert!(
        distinct.len() >= 3 && spread >= 16,
        "restarts must not all happen at once: served {served:?}, last response indexes {last_index:?}"
    );
    // the replacement is forked before the old worker leaves: in the master's own
    // order of events, every exit leaves at least 8 workers
    let log = server.log();
    let (mut alive, mut exits) = (0i32, 0);
    for line in log.lines() {
        if line.contains("] child ") && line.ends_with(" started") {
            alive += 1;
        } else if line.contains(" exited ") {
            alive -= 1;
            exits += 1;
            assert!(alive >= 8, "capacity dipped to {alive} at: {line}\n{log}");
        }
    }
    assert!(exits >= 16, "workers recycled: {log}");
    let low = counts.iter().copied().min().unwrap_or(0);
    assert!(low >= 8, "{counts:?}");
}

/// A GET read to END_REQUEST, then what one more read of the connection returns.
fn get_then_read_on(
    server: &Server,
    script: &str,
    query: &str,
) -> (
    php_fpm_rs::fastcgi::client::Response,
    std::io::Result<usize>,
) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&server.sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let path = server.script(script);
    let name = format!("/{script}");
    let uri = format!("{name}?{query}");
    let mut out = Vec::new();
    php_fpm_rs::fastcgi::client::RequestBuilder::new(1, false)
        .param("SCRIPT_FILENAME", path.to_string_lossy().as_ref())
        .param("SCRIPT_NAME", &name)
        .param("REQUEST_URI", &uri)
        .param("QUERY_STRING", query)
        .param("REQUEST_METHOD", "GET")
        .encode(&mut out);
    s.write_all(&out).expect("send");
    let r = support::read_response(&mut s).expect("an answer, not a dropped connection");
    (r, s.read(&mut [0u8; 64]))
}

#[test]
fn request_terminate_timeout_answers_504_after_the_timeout_and_names_the_script() {
    let server = start("pm = static\npm.max_children = 1\nrequest_terminate_timeout = 2s");
    // the one worker has served before: PHP's signal set-up after a first request must
    // still hand SIGTERM to the worker's handler, which sends the 504
    for _ in 0..3 {
        assert!(body_ok(&server.get("hello.php", "").expect("hello")).1);
    }
    let first = server.workers();
    let t0 = Instant::now();
    let (r, after) = get_then_read_on(&server, "sleep10.php", "x=1");
    let took = t0.elapsed();
    assert!(
        matches!(after, Ok(0)),
        "after the 504 the connection ends cleanly, not with a reset: {after:?}"
    );
    let (headers, body) = r.split_headers();
    assert!(
        headers.contains(&("Status".into(), "504 Gateway Timeout".into())),
        "{headers:?} {}",
        String::from_utf8_lossy(body)
    );
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(4500),
        "ended after about 2 s: {took:?}"
    );
    let script = server.script("sleep10.php");
    wait_for(Duration::from_secs(5), "the exit line", || {
        server.log().contains("exited on signal 15 (SIGTERM)")
    });
    let log = server.log();
    let line = format!(
        "WARNING: [pool t] child {{}}, script '{}' (request: \"GET /sleep10.php?x=1\") execution timed out",
        script.display()
    );
    let (before, after) = line.split_once("{}").expect("template");
    assert!(
        log.lines().any(|l| l.contains(before) && l.contains(after)),
        "php-fpm's timeout line names the script: {log}"
    );
    let r = server
        .get("hello.php", "")
        .expect("the pool serves the next request");
    assert!(body_ok(&r).1);
    wait_for(Duration::from_secs(5), "the replacement", || {
        let now = server.workers();
        now.len() == 1 && now != first
    });
}

#[test]
fn a_worker_killed_mid_request_fails_only_that_request_and_is_replaced() {
    let server = start("pm = static\npm.max_children = 3");
    let before = server.workers();
    let victim_req = {
        let (sock, script) = (server.sock.clone(), server.script("pid-then-sleep.php"));
        std::thread::spawn(move || support::request(&sock, &script, ""))
    };
    let pidfile = server.script("running.pid");
    wait_for(Duration::from_secs(10), "the script to start", || {
        pidfile.exists()
    });
    let victim: i32 = std::fs::read_to_string(&pidfile)
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid");
    // other requests go on while the victim dies
    let others = {
        let (sock, script) = (server.sock.clone(), server.script("hello.php"));
        std::thread::spawn(move || {
            (0..100)
                .filter(|_| support::request(&sock, &script, "").is_ok_and(|r| body_ok(&r).1))
                .count()
        })
    };
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim), Signal::SIGSEGV).expect("kill");
    let r = victim_req.join().expect("client");
    assert!(
        r.is_err(),
        "the killed request gets a closed connection: {r:?}"
    );
    assert_eq!(
        others.join().expect("client"),
        100,
        "no other request is affected"
    );
    wait_for(Duration::from_secs(5), "a replacement worker", || {
        let now = server.workers();
        now.len() == 3 && !now.contains(&(victim as u32))
    });
    assert_eq!(before.len(), 3);
    let log = server.log();
    assert!(
        log.contains(&format!(
            "WARNING: [pool t] child {victim} exited on signal 11 (SIGSEGV"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "child {victim} died while serving script '{}' (request: \"GET /pid-then-sleep.php\")",
            server.script("pid-then-sleep.php").display()
        )),
        "{log}"
    );
}

#[test]
fn crashes_beyond_the_threshold_restart_the_engine_and_below_it_do_not() {
    let server = start_with(
        "pm = static\npm.max_children = 4",
        "emergency_restart_threshold = 3\nemergency_restart_interval = 30s",
    );
    let segv = |pid: u32| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGSEGV)
            .expect("kill");
    };
    let initial = server.workers();
    for &pid in &initial[..2] {
        segv(pid);
    }
    wait_for(Duration::from_secs(5), "two replacements", || {
        let w = server.workers();
        w.len() == 4 && !w.contains(&initial[0]) && !w.contains(&initial[1])
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !server.log().contains("failed processes threshold"),
        "two crashes are below a threshold of 3"
    );
    let survivors = server.workers();
    segv(survivors[0]);
    wait_for(Duration::from_secs(10), "the emergency restart", || {
        server.log().contains("Reloading in progress")
            && count(&server.log(), "ready to handle connections") == 2
    });
    let log = server.log();
    assert!(
        log.contains(
            "WARNING: failed processes threshold (3 in 30 sec) is reached, initiating reload"
        ),
        "{log}"
    );
    // a fresh engine: every worker of the old image is replaced, the master stays
    wait_for(
        Duration::from_secs(10),
        "the old generation to leave",
        || {
            let w = server.workers();
            w.len() == 4 && survivors.iter().all(|p| !w.contains(p))
        },
    );
    assert!(
        std::path::Path::new(&format!("/proc/{}", server.pid())).exists(),
        "the master itself keeps its pid"
    );
    let r = server
        .get("hello.php", "")
        .expect("serves after the restart");
    assert!(body_ok(&r).1);
}

#[test]
fn twenty_reloads_under_load_lose_nothing_and_do_not_wait_for_slow_requests() {
    let server = start("pm = static\npm.max_children = 4");
    let done = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let served = Arc::new(AtomicUsize::new(0));
    let fast_latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let mut clients = Vec::new();
    // two clients keep 3 s requests in flight, two send fast ones; all bounded
    for slow in [true, true, false, false] {
        let (sock, done, failures, served, lat) = (
            server.sock.clone(),
            Arc::clone(&done),
            Arc::clone(&failures),
            Arc::clone(&served),
            Arc::clone(&fast_latencies),
        );
        let script = server.script(if slow { "sleep.php" } else { "hello.php" });
        clients.push(std::thread::spawn(move || {
            for _ in 0..2000 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let t = Instant::now();
                match support::request(&sock, &script, if slow { "ms=3000" } else { "" }) {
                    Ok(r) if body_ok(&r).1 => {
                        served.fetch_add(1, Ordering::Relaxed);
                        if !slow {
                            lat.lock().expect("lat").push(t.elapsed());
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                    Ok(r) => failures
                        .lock()
                        .expect("f")
                        .push(format!("{:?}", r.split_headers().0)),
                    Err(e) => failures.lock().expect("f").push(e.to_string()),
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(300));
    let reload_started = Instant::now();
    for i in 1..=20 {
        server.signal(Signal::SIGUSR2);
        wait_for(Duration::from_secs(15), "the reload to complete", || {
            count(&server.log(), "ready to handle connections") == i + 1
        });
        std::thread::sleep(Duration::from_millis(100));
    }
    let reloads_took = reload_started.elapsed();
    // let the last slow requests of old generations finish too
    std::thread::sleep(Duration::from_millis(500));
    done.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client");
    }
    let failures = failures.lock().expect("f").clone();
    assert!(
        failures.is_empty(),
        "failed requests during reloads: {failures:?}"
    );
    let lat = fast_latencies.lock().expect("lat").clone();
    let worst = lat.iter().max().copied().unwrap_or_default();
    eprintln!(
        "20 reloads in {reloads_took:?}: {} requests served, {} fast ones, worst fast latency {worst:?}",
        served.load(Ordering::Relaxed),
        lat.len()
    );
    assert!(lat.len() > 100, "fast requests kept flowing: {}", lat.len());
    assert!(
        worst < Duration::from_millis(1000),
        "a fast request never waits for the 3 s ones: worst {worst:?}"
    );
    let log = server.log();
    assert_eq!(count(&log, "NOTICE: Reloading in progress ..."), 20);
    assert_eq!(count(&log, "NOTICE: using inherited socket fd="), 20);
    // the old generations are gone once their requests ended
    wait_for(
        Duration::from_secs(10),
        "only the last generation left",
        || server.workers().len() == 4,
    );
}

#[test]
fn a_bad_configuration_on_reload_is_refused_and_the_pool_keeps_serving() {
    let server = start("pm = static\npm.max_children = 2");
    let before = server.workers();
    support::write_config(
        server.dir.path(),
        &server.sock,
        "pm = static\npm.max_children = 2\npm.max_requests = lots",
        "",
    );
    server.signal(Signal::SIGUSR2);
    wait_for(Duration::from_secs(10), "the refusal", || {
        server.log().contains("reload refused")
    });
    let log = server.log();
    assert!(
        log.contains("pool.conf:"),
        "the error names the file and line: {log}"
    );
    assert!(log.contains("pm.max_requests"), "{log}");
    assert_eq!(
        server.workers(),
        before,
        "the running workers are untouched"
    );
    let r = server.get("hello.php", "").expect("still serving");
    assert!(body_ok(&r).1);
    // SIGUSR1 reopens the log
    server.signal(Signal::SIGUSR1);
    wait_for(Duration::from_secs(5), "the reopen notice", || {
        server.log().contains("NOTICE: error log file re-opened")
    });
}

#[test]
fn reload_applies_the_new_configuration() {
    let server = start("pm = static\npm.max_children = 2\nphp_value[memory_limit] = 64M");
    std::fs::write(
        server.script("limit.php"),
        "<?php echo ini_get('memory_limit');",
    )
    .expect("script");
    let r = server.get("limit.php", "").expect("request");
    assert_eq!(body_ok(&r).0, "64M");
    support::write_config(
        server.dir.path(),
        &server.sock,
        "pm = static\npm.max_children = 3\nphp_value[memory_limit] = 96M",
        "",
    );
    server.signal(Signal::SIGUSR2);
    wait_for(Duration::from_secs(10), "the new generation", || {
        count(&server.log(), "ready to handle connections") == 2 && server.workers().len() == 3
    });
    let r = server.get("limit.php", "").expect("request");
    assert_eq!(body_ok(&r).0, "96M");
}

#[test]
fn reload_resets_the_opcode_cache() {
    let server = start(
        // file_update_protection would keep a file written a moment ago out of the cache
        "pm = static\npm.max_children = 1\nphp_admin_value[opcache.validate_timestamps] = 0\nphp_admin_value[opcache.file_update_protection] = 0",
    );
    let script = server.script("cached.php");
    std::fs::write(&script, "<?php echo 'one';").expect("script");
    assert_eq!(
        body_ok(&server.get("cached.php", "").expect("request")).0,
        "one"
    );
    std::fs::write(&script, "<?php echo 'two';").expect("script");
    // without timestamp checks the cached script keeps being served...
    assert_eq!(
        body_ok(&server.get("cached.php", "").expect("request")).0,
        "one"
    );
    server.signal(Signal::SIGUSR2);
    wait_for(Duration::from_secs(10), "the new generation", || {
        count(&server.log(), "ready to handle connections") == 2
    });
    wait_for(Duration::from_secs(10), "the new script", || {
        server
            .get("cached.php", "")
            .is_ok_and(|r| body_ok(&r).0 == "two")
    });
}

#[test]
fn process_limits_priority_and_process_max_apply_to_workers() {
    let server = start_with(
        "pm = static\npm.max_children = 4\nprocess.priority = 7\nrlimit_files = 1234",
        "process.max = 2",
    );
    wait_for(Duration::from_secs(5), "two workers", || {
        server.workers().len() == 2
    });
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(server.workers().len(), 2, "process.max caps the pool");
    assert_eq!(
        count(&server.log(), "WARNING: The maximum number of processes has been reached. Please review your configuration and consider raising 'process.max'"),
        1,
        "{}",
        server.log()
    );
    for pid in server.workers() {
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
        assert!(
            limits
                .lines()
                .any(|l| l.starts_with("Max open files") && l.contains(" 1234 ")),
            "{limits}"
        );
        assert!(
            limits
                .lines()
                .any(|l| l.starts_with("Max core file size")
                    && l.split_whitespace().nth(4) == Some("0")),
            "rlimit_core = 0: {limits}"
        );
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let nice = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(16))
            .expect("nice field");
        assert_eq!(nice, "7", "process.priority");
    }
}

#[test]
fn track_finished_decides_whether_work_after_fastcgi_finish_request_is_bounded() {
    let script = "<?php echo 'sent'; fastcgi_finish_request(); sleep(4); file_put_contents(__DIR__ . '/after', 'done');";
    for track in ["no", "yes"] {
        let server = start(&format!(
            "pm = static\npm.max_children = 1\nrequest_terminate_timeout = 2s\nrequest_terminate_timeout_track_finished = {track}"
        ));
        std::fs::write(server.script("finish.php"), script).expect("script");
        let t0 = Instant::now();
        let r = server.get("finish.php", "").expect("answered");
        assert_eq!(body_ok(&r).0, "sent");
        assert!(t0.elapsed() < Duration::from_secs(1), "answered at once");
        if track == "no" {
            wait_for(
                Duration::from_secs(8),
                "the background work to finish",
                || server.script("after").exists(),
            );
            assert!(
                !server.log().contains("execution timed out"),
                "{}",
                server.log()
            );
        } else {
            wait_for(Duration::from_secs(6), "the timeout", || {
                server.log().contains("execution timed out")
            });
            std::thread::sleep(Duration::from_millis(2500));
            assert!(
                !server.script("after").exists(),
                "the work was ended at 2 s"
            );
        }
    }
}

#[test]
fn a_kept_connection_waiting_for_its_next_request_is_not_timed_out() {
    use php_fpm_rs::fastcgi::client::RequestBuilder;
    use std::io::Write;
    let server = start("pm = static\npm.max_children = 1\nrequest_terminate_timeout = 1s");
    let mut conn = std::os::unix::net::UnixStream::connect(&server.sock).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let script = server.script("hello.php");
    let ask = |conn: &mut std::os::unix::net::UnixStream| {
        let mut out = Vec::new();
        RequestBuilder::new(1, true)
            .param("SCRIPT_FILENAME", script.to_string_lossy().as_bytes())
            .param("REQUEST_METHOD", "GET")
            .encode(&mut out);
        conn.write_all(&out).expect("send");
        body_ok(&support::read_response(conn).expect("the kept connection answers"))
    };
    let (first, ok) = ask(&mut conn);
    assert!(ok, "{first}");
    // php-fpm would end this worker after 1 s of waiting for the web server
    std::thread::sleep(Duration::from_millis(2500));
    let (second, ok) = ask(&mut conn);
    assert!(ok);
    assert_eq!(
        first, second,
        "the same worker answers on the kept connection"
    );
    assert!(!server.log().contains("timed out"), "{}", server.log());
}
