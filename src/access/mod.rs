//! The access log: php-fpm's `access.format` placeholders, parsed once when the pool
//! starts and rendered after each request. Knows nothing of sockets or PHP.
#![forbid(unsafe_code)]

use std::fmt::Write as _;

/// A `%d` unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeUnit {
    Seconds,
    Milli,
    Micro,
}

/// A `%M` unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SizeUnit {
    Bytes,
    Kilo,
    Mega,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Cpu,
    Duration(TimeUnit),
    Env(String),
    Script,
    ContentLength,
    Method,
    Memory(SizeUnit),
    Pool,
    Header(String),
    Pid,
    Ppid,
    Query,
    QueryMark,
    Uri,
    Remote,
    Status,
    Start(String),
    End(String),
    User,
}

/// A parsed `access.format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format(Vec<Part>);

/// What one request contributes to its access line.
#[derive(Debug, Clone, Default)]
pub struct Record<'a> {
    /// Pool name (`%n`).
    pub pool: &'a str,
    /// REMOTE_ADDR (`%R`).
    pub remote: &'a [u8],
    /// REMOTE_USER (`%u`).
    pub user: &'a [u8],
    /// REQUEST_METHOD (`%m`).
    pub method: &'a [u8],
    /// The request URI without the query (`%r`).
    pub uri: &'a [u8],
    /// QUERY_STRING (`%q`).
    pub query: &'a [u8],
    /// SCRIPT_FILENAME (`%f`).
    pub script: &'a [u8],
    /// CONTENT_LENGTH (`%l`).
    pub content_length: u64,
    /// HTTP status sent (`%s`).
    pub status: u16,
    /// Worker and master pids (`%p`, `%P`).
    pub pid: u32,
    /// The master's pid.
    pub ppid: u32,
    /// Wall clock of the request's start and end, in µs since the epoch (`%t`, `%T`).
    pub start_us: u64,
    /// End of the request.
    pub end_us: u64,
    /// CPU time used by the request, in µs (`%C` is its share of the wall time).
    pub cpu_us: u64,
    /// Peak memory (`%M`).
    pub memory: u64,
}

/// The FastCGI params of the request, for `%{NAME}e`.
pub trait Params {
    /// The value of `name`.
    fn param(&self, name: &[u8]) -> Option<&[u8]>;
}

const DEFAULT_TIME: &str = "%d/%b/%Y:%H:%M:%S %z";

impl Format {
    /// Parses php-fpm's placeholders; an unknown one is an error naming it.
    ///
    /// # Errors
    /// On an unknown placeholder, a bad `{}` argument or a trailing `%`.
    pub fn parse(s: &str) -> Result<Format, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                lit.push(c);
                continue;
            }
            let mut arg = None;
            if chars.peek() == Some(&'{') {
                chars.next();
                let mut a = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(x) => a.push(x),
                        None => return Err(format!("unterminated '%{{{a}' in access.format")),
                    }
                }
                arg = Some(a);
            }
            let Some(k) = chars.next() else {
                return Err("access.format ends with a lone '%'".into());
            };
            if k == '%' {
                lit.push('%');
                continue;
            }
            let a = arg.as_deref();
            let part = match k {
                'C' => Part::Cpu,
                'd' => Part::Duration(match a {
                    None | Some("seconds") => TimeUnit::Seconds,
                    Some("mili" | "milli" | "miliseconds" | "milliseconds") => TimeUnit::Milli,
                    Some("micro" | "microseconds") => TimeUnit::Micro,
                    Some(x) => {
                        return Err(format!(
                            "access.format: '%{{{x}}}d' is not a time unit (seconds, mili, micro)"
                        ))
                    }
                }),
                'e' => Part::Env(
                    a.filter(|x| !x.is_empty())
                        .ok_or("access.format: '%e' needs a variable name: %{NAME}e")?
                        .to_string(),
                ),
                'f' => Part::Script,
                'l' => Part::ContentLength,
                'm' => Part::Method,
                'M' => Part::Memory(match a {
                    None | Some("bytes") => SizeUnit::Bytes,
                    Some("kilo" | "kilobytes") => SizeUnit::Kilo,
                    Some("mega" | "megabytes") => SizeUnit::Mega,
                    Some(x) => {
                        return Err(format!(
                            "access.format: '%{{{x}}}M' is not a size unit (bytes, kilo, mega)"
                        ))
                    }
                }),
                'n' => Part::Pool,
                'o' => Part::Header(
                    a.filter(|x| !x.is_empty())
                        .ok_or("access.format: '%o' needs a header name: %{NAME}o")?
                        .to_string(),
                ),
                'p' => Part::Pid,
                'P' => Part::Ppid,
                'q' => Part::Query,
                'Q' => Part::QueryMark,
                'r' => Part::Uri,
                'R' => Part::Remote,
                's' => Part::Status,
                't' => Part::Start(a.unwrap_or(DEFAULT_TIME).to_string()),
                'T' => Part::End(a.unwrap_or(DEFAULT_TIME).to_string()),
                'u' => Part::User,
                x => return Err(format!("access.format: unsupported placeholder '%{x}'")),
            };
            if !lit.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut lit)));
            }
            parts.push(part);
        }
        if !lit.is_empty() {
            parts.push(Part::Literal(lit));
        }
        Ok(Format(parts))
    }

    /// The access line for `r` (without the newline).
    pub fn render(&self, r: &Record<'_>, params: &dyn Params) -> String {
        let mut out = String::with_capacity(128);
        let text = |out: &mut String, v: &[u8], empty: &str| {
            if v.is_empty() {
                out.push_str(empty);
            } else {
                out.push_str(&String::from_utf8_lossy(v));
            }
        };
        let wall = r.end_us.saturating_sub(r.start_us);
        for p in &self.0 {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Cpu => {
                    let pct = if wall == 0 {
                        0.0
                    } else {
                        r.cpu_us as f64 / wall as f64 * 100.0
                    };
                    let _ = write!(out, "{pct:.2}");
                }
                Part::Duration(u) => {
                    let _ = match u {
                        TimeUnit::Seconds => write!(out, "{:.3}", wall as f64 / 1e6),
                        TimeUnit::Milli => write!(out, "{:.3}", wall as f64 / 1e3),
                        TimeUnit::Micro => write!(out, "{wall}"),
                    };
                }
                Part::Env(name) => text(
                    &mut out,
                    params.param(name.as_bytes()).unwrap_or_default(),
                    "-",
                ),
                Part::Script => text(&mut out, r.script, "-"),
                Part::ContentLength => {
                    let _ = write!(out, "{}", r.content_length);
                }
                Part::Method => text(&mut out, r.method, "-"),
                Part::Memory(u) => {
                    let _ = match u {
                        SizeUnit::Bytes => write!(out, "{}", r.memory),
                        SizeUnit::Kilo => write!(out, "{}", r.memory / 1024),
                        SizeUnit::Mega => write!(out, "{}", r.memory / (1024 * 1024)),
                    };
                }
                Part::Pool => out.push_str(r.pool),
                // response headers stay inside PHP; php-fpm prints '-' for the ones
                // PHP sets by default, and so does this for all of them
                Part::Header(_) => out.push('-'),
                Part::Pid => {
                    let _ = write!(out, "{}", r.pid);
                }
                Part::Ppid => {
                    let _ = write!(out, "{}", r.ppid);
                }
                Part::Query => text(&mut out, r.query, ""),
                Part::QueryMark => {
                    if !r.query.is_empty() {
                        out.push('?');
                    }
                }
                Part::Uri => text(&mut out, r.uri, "-"),
                Part::Remote => text(&mut out, r.remote, "-"),
                Part::Status => {
                    let _ = write!(out, "{}", r.status);
                }
                Part::Start(f) => strftime(&mut out, f, (r.start_us / 1_000_000) as i64),
                Part::End(f) => strftime(&mut out, f, (r.end_us / 1_000_000) as i64),
                Part::User => text(&mut out, r.user, ""),
            }
        }
        out
    }
}

/// The strftime specifiers access formats use, in UTC (the C library's localtime
/// under a service's default TZ).
fn strftime(out: &mut String, fmt: &str, t: i64) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let (y, m, d) = crate::logging::civil_from_days(days);
    let (hh, mm, ss) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let _ = match chars.next() {
            Some('d') => write!(out, "{d:02}"),
            Some('e') => write!(out, "{d:2}"),
            Some('m') => write!(out, "{m:02}"),
            Some('b' | 'h') => write!(out, "{}", MONTHS[(m as usize + 11) % 12]),
            Some('Y') => write!(out, "{y}"),
            Some('y') => write!(out, "{:02}", y.rem_euclid(100)),
            Some('H') => write!(out, "{hh:02}"),
            Some('M') => write!(out, "{mm:02}"),
            Some('S') => write!(out, "{ss:02}"),
            Some('T') => write!(out, "{hh:02}:{mm:02}:{ss:02}"),
            Some('F') => write!(out, "{y}-{m:02}-{d:02}"),
            Some('z') => write!(out, "+0000"),
            Some('Z') => write!(out, "UTC"),
            Some('s') => write!(out, "{t}"),
            Some('a') => write!(out, "{}", DAYS[days.rem_euclid(7) as usize]),
            Some('%') => write!(out, "%"),
            Some(x) => write!(out, "%{x}"),
            None => write!(out, "%"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct P;
    impl Params for P {
        fn param(&self, name: &[u8]) -> Option<&[u8]> {
            (name == b"REQUEST_METHOD").then_some(b"GET")
        }
    }

    fn rec() -> Record<'static> {
        Record {
            pool: "fmt",
            method: b"GET",
            uri: b"/hello.php",
            query: b"a=1&b=2",
            script: b"/tmp/pmt/www/hello.php",
            status: 200,
            pid: 25125,
            ppid: 25123,
            start_us: 1_795_245_657_000_000,
            end_us: 1_795_245_657_000_748,
            memory: 2_097_152,
            ..Record::default()
        }
    }

    #[test]
    fn renders_like_php_fpm_8_2() {
        // the same format and request as a php-fpm8.2 run on this machine; its line:
        let php_fpm = "-||21/Nov/2026:07:20:57 +0000|GET|/hello.php|a=1&b=2|?|200|/tmp/pmt/www/hello.php|0|fmt|25125|0.748|748|0.001|2048|2097152|0.00%|GET|07:20|21/Nov/2026:07:20:57 +0000|-|25123";
        let f = Format::parse("%R|%u|%t|%m|%r|%q|%Q|%s|%f|%l|%n|%p|%{mili}d|%{micro}d|%d|%{kilo}M|%M|%C%%|%{REQUEST_METHOD}e|%{%H:%M}t|%T|%{Content-Type}o|%P").expect("format");
        assert_eq!(f.render(&rec(), &P), php_fpm);
    }

    #[test]
    fn the_default_format_and_an_empty_query() {
        let f = Format::parse(crate::config::DEFAULT_ACCESS_FORMAT).expect("default");
        let mut r = rec();
        r.query = b"";
        assert_eq!(
            f.render(&r, &P),
            "- -  21/Nov/2026:07:20:57 +0000 \"GET /hello.php\" 200"
        );
    }

    #[test]
    fn bad_formats_are_named() {
        assert!(Format::parse("%Z").expect_err("unknown").contains("'%Z'"));
        assert!(Format::parse("%{weeks}d").is_err());
        assert!(Format::parse("%e").is_err());
        assert!(Format::parse("100%").is_err());
        assert!(Format::parse("%{open").is_err());
        assert_eq!(
            Format::parse("50%% %s").expect("ok").render(&rec(), &P),
            "50% 200"
        );
    }
}
