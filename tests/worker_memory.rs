//! A worker keeps the buffers a large request grew while it is busy (no regrowth and
//! page faults per request), and gives them back once it has been idle for a second,
//! so that at rest it holds what a small request needs.

mod support;

use std::time::Duration;

use support::{body_ok, start, wait_for};

/// Private dirty KiB of the worker's malloc heap.
fn heap_dirty_kib(pid: u32) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("smaps");
    let mut in_heap = false;
    let mut kib = 0;
    for line in smaps.lines() {
        if line.contains(" rw-p ") || line.contains(" r--p ") || line.contains(" r-xp ") {
            in_heap = line.ends_with("[heap]");
        } else if in_heap {
            if let Some(v) = line.strip_prefix("Private_Dirty:") {
                kib += v.trim().trim_end_matches(" kB").parse::<u64>().unwrap_or(0);
            }
        }
    }
    kib
}

#[test]
fn an_idle_worker_gives_back_what_large_requests_grew() {
    let server = start("pm = static\npm.max_children = 1");
    let dir = server.dir.path();
    std::fs::write(dir.join("small.php"), "<?php echo 'small';").expect("script");
    std::fs::write(
        dir.join("large.php"),
        "<?php echo strlen(file_get_contents('php://input')), str_repeat('x', 200000);",
    )
    .expect("script");
    let worker = server.workers()[0];
    for _ in 0..5 {
        assert!(
            body_ok(&support::request(&server.sock, &dir.join("small.php"), "").expect("small")).1
        );
    }
    let small = heap_dirty_kib(worker);

    let body = vec![b'b'; 1 << 20];
    for _ in 0..3 {
        let r = support::request_body(&server.sock, &dir.join("large.php"), &body)
            .expect("a large request");
        let (text, ok) = body_ok(&r);
        assert!(
            ok && text.starts_with("1048576x"),
            "{}",
            &text[..text.len().min(80)]
        );
    }
    wait_for(
        Duration::from_secs(10),
        "the heap back to its small-request size",
        || heap_dirty_kib(worker) <= small + 32,
    );
}
