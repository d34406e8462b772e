//! The pool's status and ping pages, as php-fpm 8.2 writes them: plain text by
//! default, `?json`, `?xml`, `?html` or `?openmetrics`, and `?full` for one entry per
//! worker. Built from scoreboard snapshots; knows nothing of sockets or PHP.
#![forbid(unsafe_code)]

use std::fmt::Write as _;

use crate::scoreboard::{SlotSnapshot, WorkerState};

/// `pm.status_path`, `ping.path` and `ping.response` of a pool.
#[derive(Debug, Clone, Default)]
pub struct Pages {
    /// `pm.status_path`.
    pub status_path: Option<String>,
    /// `ping.path`.
    pub ping_path: Option<String>,
    /// `ping.response`.
    pub ping_response: String,
    /// `static`, `dynamic` or `ondemand`, for the status page.
    pub process_manager: &'static str,
}

/// Which page a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The status page.
    Status,
    /// The ping page.
    Ping,
    /// Neither (only on a status-only socket: answered 404).
    NotFound,
}

impl Pages {
    /// The page `uri` (PHP's request_uri, the script name) names, if any.
    pub fn which(&self, uri: &[u8]) -> Option<Page> {
        let is = |p: &Option<String>| p.as_deref().is_some_and(|p| p.as_bytes() == uri);
        if is(&self.ping_path) {
            Some(Page::Ping)
        } else if is(&self.status_path) {
            Some(Page::Status)
        } else {
            None
        }
    }
}

/// The parts of a request the pages look at.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The script name.
    pub uri: &'a [u8],
    /// QUERY_STRING (format and `full`).
    pub query: &'a [u8],
    /// REQUEST_METHOD (HEAD gets headers only).
    pub method: &'a [u8],
}

/// The whole CGI response (headers and body) for `page`, read from `board`.
pub fn respond(
    page: Page,
    req: &Request<'_>,
    pages: &Pages,
    pool: &str,
    board: &crate::scoreboard::Scoreboard,
) -> Vec<u8> {
    use std::sync::atomic::Ordering::Relaxed;
    let (status_line, content_type, body) = match page {
        Page::Ping => ("", "text/plain;charset=UTF-8", pages.ping_response.clone()),
        Page::NotFound => (
            "Status: 404 Not Found\r\n",
            "text/plain;charset=UTF-8",
            "File not found.\n".to_string(),
        ),
        Page::Status => {
            let h = board.header();
            let now_unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let start = h.start_unix.load(Relaxed) as i64;
            let status = PoolStatus {
                pool: pool.to_string(),
                process_manager: pages.process_manager,
                start_time: start,
                start_since: now_unix.saturating_sub(start).max(0) as u64,
                accepted_conn: h.accepted_conn.load(Relaxed),
                max_active_processes: h.max_active.load(Relaxed) as u32,
                max_children_reached: h.max_children_reached.load(Relaxed),
                ..PoolStatus::default()
            };
            let slots: Vec<_> = board.slots().map(|s| s.snapshot()).collect();
            let (format, full) = parse_query(req.query);
            let (ct, body) = render(
                &status,
                &slots,
                format,
                full,
                crate::scoreboard::now_us(),
                now_unix,
            );
            ("", ct, body)
        }
    };
    let mut out = format!("{status_line}{NO_CACHE}Content-type: {content_type}\r\n\r\n");
    if req.method != b"HEAD" {
        out.push_str(&body);
    }
    out.into_bytes()
}

/// What `fpm_get_status()` returns, as JSON with php-fpm's keys and types (the shim
/// decodes it into the PHP array).
pub fn export_json(pool: &str, pages: &Pages, board: &crate::scoreboard::Scoreboard) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let h = board.header();
    let now_us = crate::scoreboard::now_us();
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let start = h.start_unix.load(Relaxed) as i64;
    let slots: Vec<SlotSnapshot> = board.slots().map(|s| s.snapshot()).collect();
    let live: Vec<&SlotSnapshot> = slots
        .iter()
        .filter(|s| s.state != WorkerState::Free && s.pid != 0)
        .collect();
    let idle = live.iter().filter(|s| s.state == WorkerState::Idle).count();
    let active = live.len() - idle;
    let max_active = (h.max_active.load(Relaxed) as usize).max(active);
    let mut out = format!(
        "{{\"pool\":\"{}\",\"process-manager\":\"{}\",\"start-time\":{start},\"start-since\":{},\"accepted-conn\":{},\"listen-queue\":0,\"max-listen-queue\":0,\"listen-queue-len\":0,\"idle-processes\":{idle},\"active-processes\":{active},\"total-processes\":{},\"max-active-processes\":{max_active},\"max-children-reached\":{},\"slow-requests\":0,\"procs\":[",
        escape_json(pool),
        pages.process_manager,
        now_unix.saturating_sub(start).max(0),
        h.accepted_conn.load(Relaxed),
        live.len(),
        h.max_children_reached.load(Relaxed),
    );
    for (i, s) in live.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let is_idle = s.state == WorkerState::Idle;
        let since = now_us.saturating_sub(s.started_us) / 1_000_000;
        let duration = if is_idle {
            s.last_duration_us
        } else {
            now_us.saturating_sub(s.since_us)
        };
        let cpu = if is_idle && s.last_duration_us > 0 {
            s.last_cpu_us as f64 / s.last_duration_us as f64 * 100.0
        } else {
            0.0
        };
        let _ = write!(
            out,
            "{{\"pid\":{},\"state\":\"{}\",\"start-time\":{},\"start-since\":{since},\"requests\":{},\"request-duration\":{duration},\"request-method\":\"{}\",\"request-uri\":\"{}\",\"query-string\":\"{}\",\"request-length\":{},\"user\":\"-\",\"script\":\"{}\",\"last-request-cpu\":{cpu:.2},\"last-request-memory\":{}}}",
            s.pid,
            s.state.name(),
            now_unix - since as i64,
            s.requests,
            escape_json(&dash(&s.method)),
            escape_json(&s.uri),
            escape_json(&s.query),
            s.content_length,
            escape_json(&dash(&s.script)),
            if is_idle { s.last_memory } else { 0 },
        );
    }
    out.push_str("]}");
    out
}

/// Headers php-fpm sends with both pages.
pub const NO_CACHE: &str =
    "Expires: Thu, 01 Jan 1970 00:00:00 GMT\r\nCache-Control: no-cache, no-store, must-revalidate, max-age=0\r\n";

/// The pool-wide part of the page.
#[derive(Debug, Clone, Default)]
pub struct PoolStatus {
    /// Pool name.
    pub pool: String,
    /// `static`, `dynamic` or `ondemand`.
    pub process_manager: &'static str,
    /// Unix time the pool (generation) started.
    pub start_time: i64,
    /// Seconds since then.
    pub start_since: u64,
    /// Connections accepted.
    pub accepted_conn: u64,
    /// Connections waiting in the socket's queue now.
    pub listen_queue: u32,
    /// The most seen waiting.
    pub max_listen_queue: u32,
    /// The queue's size (backlog).
    pub listen_queue_len: u32,
    /// Most workers busy at once.
    pub max_active_processes: u32,
    /// Times pm.max_children was hit.
    pub max_children_reached: u64,
    /// Requests over request_slowlog_timeout.
    pub slow_requests: u64,
}

/// Output format, from the query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain`.
    Text,
    /// `?json`.
    Json,
    /// `?xml`.
    Xml,
    /// `?html`.
    Html,
    /// `?openmetrics`.
    OpenMetrics,
}

/// Reads php-fpm's query flags: the format and `full`.
pub fn parse_query(query: &[u8]) -> (Format, bool) {
    let keys: Vec<&[u8]> = query
        .split(|&c| c == b'&')
        .map(|kv| kv.split(|&c| c == b'=').next().unwrap_or_default())
        .collect();
    let has = |k: &[u8]| keys.contains(&k);
    let format = if has(b"html") {
        Format::Html
    } else if has(b"xml") {
        Format::Xml
    } else if has(b"json") {
        Format::Json
    } else if has(b"openmetrics") {
        Format::OpenMetrics
    } else {
        Format::Text
    };
    (format, has(b"full"))
}

fn content_type(f: Format) -> &'static str {
    match f {
        Format::Text => "text/plain;charset=UTF-8",
        Format::Json => "application/json",
        Format::Xml => "text/xml;charset=UTF-8",
        Format::Html => "text/html;charset=UTF-8",
        Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
    }
}

/// Seconds east of UTC and the broken-down local time of `t`, as strftime's %z and
/// the C library's localtime see them.
fn clf_time(t: i64) -> String {
    // php-fpm prints "%d/%b/%Y:%H:%M:%S %z" in local time; the service runs in UTC
    // unless TZ says otherwise, and the offset printed keeps the value exact.
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, m, d) = crate::logging::civil_from_days(days);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m as usize).saturating_sub(1) % 12],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn escape_json(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// One worker as the page shows it.
struct Proc {
    pid: u32,
    state: &'static str,
    start_time: i64,
    start_since: u64,
    requests: u64,
    duration_us: u64,
    method: String,
    uri: String,
    content_length: u64,
    script: String,
    cpu: f64,
    memory: u64,
}

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.into()
    }
}

fn procs(slots: &[SlotSnapshot], now_us: u64, now_unix: i64) -> Vec<Proc> {
    slots
        .iter()
        .filter(|s| s.state != WorkerState::Free && s.pid != 0)
        .map(|s| {
            let idle = s.state == WorkerState::Idle;
            let since = now_us.saturating_sub(s.started_us) / 1_000_000;
            let uri = if s.query.is_empty() {
                s.uri.clone()
            } else {
                format!("{}?{}", s.uri, s.query)
            };
            let cpu = if idle && s.last_duration_us > 0 {
                s.last_cpu_us as f64 / s.last_duration_us as f64 * 100.0
            } else {
                0.0
            };
            Proc {
                pid: s.pid,
                state: s.state.name(),
                start_time: now_unix - since as i64,
                start_since: since,
                requests: s.requests,
                duration_us: if idle {
                    s.last_duration_us
                } else {
                    now_us.saturating_sub(s.since_us)
                },
                method: dash(&s.method),
                uri: dash(&uri),
                content_length: s.content_length,
                script: dash(&s.script),
                cpu,
                memory: if idle { s.last_memory } else { 0 },
            }
        })
        .collect()
}

/// The status page: the Content-Type and the body.
pub fn render(
    pool: &PoolStatus,
    slots: &[SlotSnapshot],
    format: Format,
    full: bool,
    now_us: u64,
    now_unix: i64,
) -> (&'static str, String) {
    let idle = slots
        .iter()
        .filter(|s| s.state == WorkerState::Idle)
        .count();
    let total = slots
        .iter()
        .filter(|s| s.state != WorkerState::Free && s.state != WorkerState::Ending)
        .count();
    let active = total - idle;
    let max_active = (pool.max_active_processes as usize).max(active);
    let p = pool;
    let start = match format {
        Format::Text | Format::Html => clf_time(p.start_time),
        _ => p.start_time.to_string(),
    };
    let rows: [(&str, String); 14] = [
        ("pool", p.pool.clone()),
        ("process manager", p.process_manager.to_string()),
        ("start time", start),
        ("start since", p.start_since.to_string()),
        ("accepted conn", p.accepted_conn.to_string()),
        ("listen queue", p.listen_queue.to_string()),
        ("max listen queue", p.max_listen_queue.to_string()),
        ("listen queue len", p.listen_queue_len.to_string()),
        ("idle processes", idle.to_string()),
        ("active processes", active.to_string()),
        ("total processes", total.to_string()),
        ("max active processes", max_active.to_string()),
        ("max children reached", p.max_children_reached.to_string()),
        ("slow requests", p.slow_requests.to_string()),
    ];
    let list = if full {
        procs(slots, now_us, now_unix)
    } else {
        Vec::new()
    };
    let mut out = String::new();
    match format {
        Format::Text => {
            for (k, v) in &rows {
                let _ = writeln!(out, "{:<22}{v}", format!("{k}:"));
            }
            for w in &list {
                out.push_str("\n************************\n");
                for (k, v) in proc_rows(w, false) {
                    let _ = writeln!(out, "{:<22}{v}", format!("{k}:"));
                }
            }
        }
        Format::Json => {
            out.push('{');
            for (i, (k, v)) in rows.iter().enumerate() {
                let quoted = i < 2;
                if i > 0 {
                    out.push(',');
                }
                if quoted {
                    let _ = write!(out, "\"{k}\":\"{}\"", escape_json(v));
                } else {
                    let _ = write!(out, "\"{k}\":{v}");
                }
            }
            if full {
                out.push_str(", \"processes\":[");
                for (i, w) in list.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('{');
                    for (j, (k, v)) in proc_rows(w, true).iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        let text = matches!(
                            *k,
                            "state" | "request method" | "request uri" | "user" | "script"
                        );
                        if text {
                            let _ = write!(out, "\"{k}\":\"{}\"", escape_json(v));
                        } else {
                            let _ = write!(out, "\"{k}\":{v}");
                        }
                    }
                    out.push('}');
                }
                out.push(']');
            }
            out.push('}');
        }
        Format::Xml => {
            out.push_str("<?xml version=\"1.0\" ?>\n<status>\n");
            for (k, v) in &rows {
                let tag = k.replace(' ', "-");
                let _ = writeln!(out, "<{tag}>{}</{tag}>", escape_html(v));
            }
            if full {
                out.push_str("<processes>\n");
                for w in &list {
                    out.push_str("<process>");
                    for (k, v) in proc_rows(w, true) {
                        let tag = k.replace(' ', "-");
                        let _ = write!(out, "<{tag}>{}</{tag}>", escape_html(&v));
                    }
                    out.push_str("</process>\n");
                }
                out.push_str("</processes>\n");
            }
            out.push_str("</status>");
        }
        Format::Html => {
            out.push_str("<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\n<html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n<head><title>PHP-FPM Status Page</title></head>\n<body>\n<table>\n");
            for (k, v) in &rows {
                let _ = writeln!(out, "<tr><th>{k}</th><td>{}</td></tr>", escape_html(v));
            }
            out.push_str("</table>\n");
            if full {
                out.push_str("<table border=\"1\">\n<tr>");
                for (k, _) in proc_rows(&placeholder(), false) {
                    let _ = write!(out, "<th>{}</th>", k.to_lowercase());
                }
                out.push_str("</tr>\n");
                for w in &list {
                    out.push_str("<tr>");
                    for (_, v) in proc_rows(w, false) {
                        let _ = write!(out, "<td>{}</td>", escape_html(&v));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</table>");
            }
            out.push_str("</body></html>");
        }
        Format::OpenMetrics => openmetrics(&mut out, p, idle, active, total, max_active),
    }
    (content_type(format), out)
}

fn placeholder() -> Proc {
    Proc {
        pid: 0,
        state: "",
        start_time: 0,
        start_since: 0,
        requests: 0,
        duration_us: 0,
        method: String::new(),
        uri: String::new(),
        content_length: 0,
        script: String::new(),
        cpu: 0.0,
        memory: 0,
    }
}

fn proc_rows(w: &Proc, raw_time: bool) -> Vec<(&'static str, String)> {
    vec![
        ("pid", w.pid.to_string()),
        ("state", w.state.to_string()),
        (
            "start time",
            if raw_time {
                w.start_time.to_string()
            } else {
                clf_time(w.start_time)
            },
        ),
        ("start since", w.start_since.to_string()),
        ("requests", w.requests.to_string()),
        ("request duration", w.duration_us.to_string()),
        ("request method", w.method.clone()),
        (
            if raw_time {
                "request uri"
            } else {
                "request URI"
            },
            w.uri.clone(),
        ),
        ("content length", w.content_length.to_string()),
        ("user", "-".into()),
        ("script", w.script.clone()),
        ("last request cpu", format!("{:.2}", w.cpu)),
        ("last request memory", w.memory.to_string()),
    ]
}

fn openmetrics(
    out: &mut String,
    p: &PoolStatus,
    idle: usize,
    active: usize,
    total: usize,
    max_active: usize,
) {
    let metrics: [(&str, &str, &str, String); 13] = [
        ("up", "gauge", &format!("Could pool {} using a {} PM on PHP-FPM be reached?", p.pool, p.process_manager), "1".into()),
        ("start_since", "counter", "The number of seconds since FPM has started.", p.start_since.to_string()),
        ("accepted_connections", "counter", "The number of requests accepted by the pool.", p.accepted_conn.to_string()),
        ("listen_queue", "gauge", "The number of requests in the queue of pending connections.", p.listen_queue.to_string()),
        ("max_listen_queue", "counter", "The maximum number of requests in the queue of pending connections since FPM has started.", p.max_listen_queue.to_string()),
        ("listen_queue_length", "gauge", "The size of the socket queue of pending connections.", p.listen_queue_len.to_string()),
        ("idle_processes", "gauge", "The number of idle processes.", idle.to_string()),
        ("active_processes", "gauge", "The number of active processes.", active.to_string()),
        ("total_processes", "gauge", "The number of idle + active processes.", total.to_string()),
        ("max_active_processes", "counter", "The maximum number of active processes since FPM has started.", max_active.to_string()),
        ("max_children_reached", "counter", "The number of times, the process limit has been reached, when pm tries to start more children (works only for pm 'dynamic' and 'ondemand').", p.max_children_reached.to_string()),
        ("slow_requests", "counter", "The number of requests that exceeded your 'request_slowlog_timeout' value.", p.slow_requests.to_string()),
        ("", "", "", String::new()),
    ];
    for (name, kind, help, value) in metrics.iter().filter(|m| !m.0.is_empty()) {
        let _ = writeln!(out, "# HELP phpfpm_{name} {help}");
        let _ = writeln!(out, "# TYPE phpfpm_{name} {kind}");
        let _ = writeln!(out, "phpfpm_{name} {value}");
    }
    out.push_str("# EOF\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(pid: u32, state: WorkerState) -> SlotSnapshot {
        SlotSnapshot {
            state,
            pid,
            requests: 3,
            started_us: 1_000_000,
            since_us: 2_000_000,
            request_wall_us: 0,
            method: "GET".into(),
            uri: "/index.php".into(),
            query: "a=1&b=<2>".into(),
            script: "/var/www/index.php".into(),
            content_length: 0,
            finished_early: false,
            last_cpu_us: 500,
            last_memory: 2_097_152,
            last_duration_us: 1000,
            consistent: true,
        }
    }

    fn pool() -> PoolStatus {
        PoolStatus {
            pool: "www".into(),
            process_manager: "static",
            start_time: 1_795_244_978,
            start_since: 12,
            accepted_conn: 7,
            ..PoolStatus::default()
        }
    }

    #[test]
    fn the_query_picks_format_and_detail_like_php_fpm() {
        assert_eq!(parse_query(b""), (Format::Text, false));
        assert_eq!(parse_query(b"full"), (Format::Text, true));
        assert_eq!(parse_query(b"json&full"), (Format::Json, true));
        assert_eq!(parse_query(b"full=1&xml=yes"), (Format::Xml, true));
        assert_eq!(parse_query(b"openmetrics"), (Format::OpenMetrics, false));
        assert_eq!(parse_query(b"fullness"), (Format::Text, false));
    }

    #[test]
    fn plain_text_matches_php_fpm_field_for_field() {
        let slots = [
            slot(10, WorkerState::Idle),
            slot(11, WorkerState::Running),
            slot(0, WorkerState::Free),
        ];
        let (ct, body) = render(
            &pool(),
            &slots,
            Format::Text,
            true,
            5_000_000,
            1_795_244_990,
        );
        assert_eq!(ct, "text/plain;charset=UTF-8");
        let expected_head = "pool:                 www\nprocess manager:      static\nstart time:           21/Nov/2026:07:09:38 +0000\nstart since:          12\naccepted conn:        7\nlisten queue:         0\nmax listen queue:     0\nlisten queue len:     0\nidle processes:       1\nactive processes:     1\ntotal processes:      2\nmax active processes: 1\nmax children reached: 0\nslow requests:        0\n";
        assert!(body.starts_with(expected_head), "{body}");
        assert!(body.contains("\n************************\npid:                  10\nstate:                Idle\n"), "{body}");
        assert!(body.contains("request URI:          /index.php?a=1&b=<2>\n"));
        assert!(body.contains("last request cpu:     50.00\nlast request memory:  2097152\n"));
        assert_eq!(body.matches("pid:").count(), 2, "free slots are not listed");
    }

    #[test]
    fn json_xml_html_and_openmetrics_are_well_formed() {
        let slots = [slot(10, WorkerState::Idle)];
        let (ct, json) = render(&pool(), &slots, Format::Json, true, 5_000_000, 0);
        assert_eq!(ct, "application/json");
        assert!(
            json.starts_with(
                "{\"pool\":\"www\",\"process manager\":\"static\",\"start time\":1795244978,"
            ),
            "{json}"
        );
        assert!(
            json.contains(", \"processes\":[{\"pid\":10,\"state\":\"Idle\""),
            "{json}"
        );
        assert!(
            json.contains("\"request uri\":\"\\/index.php?a=1&b=<2>\""),
            "{json}"
        );
        assert!(json.ends_with("}]}"));
        let (_, xml) = render(&pool(), &slots, Format::Xml, true, 5_000_000, 0);
        assert!(xml.contains("<accepted-conn>7</accepted-conn>\n"));
        assert!(
            xml.contains("<request-uri>/index.php?a=1&amp;b=&lt;2&gt;</request-uri>"),
            "{xml}"
        );
        assert!(xml.ends_with("</processes>\n</status>"));
        let (_, html) = render(&pool(), &slots, Format::Html, false, 5_000_000, 0);
        assert!(html.contains("<tr><th>pool</th><td>www</td></tr>"));
        assert!(html.ends_with("</table>\n</body></html>"));
        let (ct, om) = render(&pool(), &slots, Format::OpenMetrics, false, 0, 0);
        assert!(ct.starts_with("application/openmetrics-text"));
        assert!(om.contains("# HELP phpfpm_up Could pool www using a static PM on PHP-FPM be reached?\n# TYPE phpfpm_up gauge\nphpfpm_up 1\n"));
        assert!(om.contains("phpfpm_accepted_connections 7\n"));
        assert!(om.ends_with("# EOF\n"));
    }
}
