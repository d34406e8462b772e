//! The status and ping pages of a pool, answered by a worker from the scoreboard
//! without running PHP, in php-fpm's formats.

mod support;

use std::time::Duration;

use support::{body_ok, start, wait_for};

fn page(
    server: &support::Server,
    path: &str,
    query: &str,
    method: &str,
) -> (Vec<(String, String)>, String) {
    let filename = format!("{}{path}", server.dir.path().display());
    let uri = format!("{path}?{query}");
    let r = support::send(
        &server.sock,
        &[
            ("SCRIPT_FILENAME", &filename),
            ("SCRIPT_NAME", path),
            ("REQUEST_URI", &uri),
            ("QUERY_STRING", query),
            ("REQUEST_METHOD", method),
        ],
    )
    .expect("a page");
    let (h, b) = r.split_headers();
    (h, String::from_utf8_lossy(b).into_owned())
}

fn field<'a>(body: &'a str, name: &str) -> &'a str {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

#[test]
fn ping_and_status_pages_answer_from_the_scoreboard() {
    let server = start("pm = static\npm.max_children = 2\npm.status_path = /status\nping.path = /ping\nping.response = alive");
    let (headers, body) = page(&server, "/ping", "", "GET");
    assert_eq!(body, "alive");
    assert!(headers.contains(&(
        "Cache-Control".into(),
        "no-cache, no-store, must-revalidate, max-age=0".into()
    )));
    let (_, body) = page(&server, "/ping", "", "HEAD");
    assert_eq!(body, "", "HEAD gets headers only");
    for _ in 0..3 {
        assert!(body_ok(&server.get("hello.php", "").expect("request")).1);
    }
    // the other worker may still be between its last answer and accept(): the
    // counts are live, so wait for the quiet state rather than sleeping
    let mut last = String::new();
    wait_for(
        Duration::from_secs(5),
        "one idle and one active worker",
        || {
            last = page(&server, "/status", "", "GET").1;
            field(&last, "idle processes") == "1" && field(&last, "active processes") == "1"
        },
    );
    let body = last;
    let (headers, _) = page(&server, "/status", "", "GET");
    assert!(
        headers.contains(&("Content-type".into(), "text/plain;charset=UTF-8".into())),
        "{headers:?}"
    );
    assert_eq!(field(&body, "pool"), "t");
    assert_eq!(field(&body, "process manager"), "static");
    assert_eq!(field(&body, "total processes"), "2");
    let accepted: u64 = field(&body, "accepted conn").parse().expect("number");
    assert!(
        accepted >= 6,
        "2 pings, 3 requests and at least one status page: {accepted}"
    );
    let (_, full) = page(&server, "/status", "full", "GET");
    assert_eq!(full.matches("************************").count(), 2);
    assert!(
        full.contains("request URI:          /status?full"),
        "{full}"
    );
    for pid in server.workers() {
        assert!(
            full.contains(&format!("pid:                  {pid}\n")),
            "{full}"
        );
    }
    let (headers, json) = page(&server, "/status", "json&full", "GET");
    assert!(headers.contains(&("Content-type".into(), "application/json".into())));
    assert!(
        json.starts_with("{\"pool\":\"t\",\"process manager\":\"static\""),
        "{json}"
    );
    assert!(json.contains("\"processes\":[{\"pid\":"), "{json}");
    let (_, metrics) = page(&server, "/status", "openmetrics", "GET");
    assert!(metrics.contains("phpfpm_total_processes 2\n"), "{metrics}");
}

#[test]
fn max_active_processes_is_remembered() {
    let server = start("pm = static\npm.max_children = 3\npm.status_path = /status");
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (sock, script) = (server.sock.clone(), server.script("sleep.php"));
            std::thread::spawn(move || support::request(&sock, &script, "ms=1500"))
        })
        .collect();
    // the master counts busy workers once a second
    wait_for(Duration::from_secs(5), "max active to reach 2", || {
        let n: u32 = field(
            &page(&server, "/status", "", "GET").1,
            "max active processes",
        )
        .parse()
        .unwrap_or(0);
        n >= 2
    });
    for t in threads {
        assert!(t.join().expect("client").is_ok());
    }
    let mut body = String::new();
    wait_for(Duration::from_secs(5), "the slow requests to end", || {
        body = page(&server, "/status", "", "GET").1;
        field(&body, "active processes") == "1"
    });
    assert!(
        field(&body, "max active processes")
            .parse::<u32>()
            .expect("n")
            >= 2,
        "{body}"
    );
}

fn page_on(sock: &std::path::Path, path: &str, query: &str) -> (Vec<(String, String)>, String) {
    let r = support::send(
        sock,
        &[
            ("SCRIPT_NAME", path),
            ("QUERY_STRING", query),
            ("REQUEST_METHOD", "GET"),
        ],
    )
    .expect("a page");
    let (h, b) = r.split_headers();
    (h, String::from_utf8_lossy(b).into_owned())
}

#[test]
fn the_status_listen_socket_answers_while_every_worker_is_busy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let status_sock = dir.path().join("status.sock");
    let server = start(&format!(
        "pm = static\npm.max_children = 1\npm.status_path = /status\npm.status_listen = {}",
        status_sock.display()
    ));
    // the only worker is busy for 2 s
    let busy = {
        let (sock, script) = (server.sock.clone(), server.script("sleep.php"));
        std::thread::spawn(move || support::request(&sock, &script, "ms=2000"))
    };
    wait_for(
        Duration::from_secs(5),
        "the worker to run the script",
        || {
            let (_, body) = page_on(&status_sock, "/status", "full");
            body.contains("state:                Running")
        },
    );
    let t0 = std::time::Instant::now();
    let (headers, body) = page_on(&status_sock, "/status", "full");
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "answered by the master at once: {took:?}"
    );
    assert_eq!(field(&body, "idle processes"), "0", "{body}");
    assert!(body.contains("state:                Running"), "{body}");
    assert!(headers.contains(&("Content-type".into(), "text/plain;charset=UTF-8".into())));
    let (_, ping) = page_on(&status_sock, "/ping", "");
    assert_eq!(ping, "pong", "ping defaults on the status socket");
    let (headers, _) = page_on(&status_sock, "/hello.php", "");
    assert!(
        headers.contains(&("Status".into(), "404 Not Found".into())),
        "only the pages live there: {headers:?}"
    );
    assert!(busy.join().expect("client").is_ok());
}

#[test]
fn fpm_get_status_returns_php_fpms_array() {
    let server = start("pm = static\npm.max_children = 2");
    std::fs::write(
        server.script("gs.php"),
        "<?php $s = fpm_get_status(); echo json_encode([is_array($s), $s['pool'], $s['process-manager'], $s['total-processes'], count($s['procs']), array_keys($s), array_keys($s['procs'][0])]);",
    )
    .expect("script");
    let r = server.get("gs.php", "").expect("request");
    let (body, ok) = body_ok(&r);
    assert!(ok, "{body}");
    assert_eq!(
        body,
        concat!(
            "[true,\"t\",\"static\",2,2,",
            "[\"pool\",\"process-manager\",\"start-time\",\"start-since\",\"accepted-conn\",\"listen-queue\",\"max-listen-queue\",\"listen-queue-len\",\"idle-processes\",\"active-processes\",\"total-processes\",\"max-active-processes\",\"max-children-reached\",\"slow-requests\",\"procs\"],",
            "[\"pid\",\"state\",\"start-time\",\"start-since\",\"requests\",\"request-duration\",\"request-method\",\"request-uri\",\"query-string\",\"request-length\",\"user\",\"script\",\"last-request-cpu\",\"last-request-memory\"]]"
        ),
        "the keys php-fpm 8.2 returns"
    );
}
