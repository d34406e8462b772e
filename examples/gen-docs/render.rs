//! Renders php-fpm-rs(8), php-fpm-rs.conf(5) and the shell completions from the code,
//! with the prose taken from `docs/man/*.md`.
//!
//! What the code knows is generated, so it cannot drift: the synopsis and options
//! come from the clap command (`cli::command()`, through clap_mangen), the exit
//! statuses from `cli::exit::ALL`, and the directive list with its "not supported
//! yet" marks from `config::directives()`. The Markdown only holds what code cannot
//! say (what a directive means); rendering fails when a directive of the code has no
//! description or a description names a directive the code does not have.
//!
//! Shared by the generator (`cargo run --example gen-docs`) and the test that fails
//! when the committed files are stale (`tests/generated_docs.rs`).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap_complete::{Generator, Shell};
use php_fpm_rs::config::{self, Section};
use php_fpm_rs::{cli, php};

/// One generated file: its path relative to the repository root, and its contents.
pub struct Generated {
    /// Path relative to the repository root.
    pub path: PathBuf,
    /// The bytes to write.
    pub contents: Vec<u8>,
}

/// Directives of php-fpm 8.2, from php-src `sapi/fpm/fpm/fpm_conf.c`
/// (`ini_fpm_global_options`, `ini_fpm_pool_options`, the array keys and
/// `include`). `listen.acl_*` need ACL support, `systemd_interval` systemd support,
/// `listen.setfib` FreeBSD and `apparmor_hat` AppArmor support: Debian's
/// php-fpm8.2 has all of them except `listen.setfib`.
const PHP_FPM_82: &[(Section, &str)] = &[
    (Section::Global, "pid"),
    (Section::Global, "error_log"),
    (Section::Global, "syslog.ident"),
    (Section::Global, "syslog.facility"),
    (Section::Global, "log_buffering"),
    (Section::Global, "log_level"),
    (Section::Global, "log_limit"),
    (Section::Global, "emergency_restart_threshold"),
    (Section::Global, "emergency_restart_interval"),
    (Section::Global, "process_control_timeout"),
    (Section::Global, "process.max"),
    (Section::Global, "process.priority"),
    (Section::Global, "daemonize"),
    (Section::Global, "rlimit_files"),
    (Section::Global, "rlimit_core"),
    (Section::Global, "events.mechanism"),
    (Section::Global, "systemd_interval"),
    (Section::Global, "include"),
    (Section::Pool, "prefix"),
    (Section::Pool, "user"),
    (Section::Pool, "group"),
    (Section::Pool, "listen"),
    (Section::Pool, "listen.backlog"),
    (Section::Pool, "listen.acl_users"),
    (Section::Pool, "listen.acl_groups"),
    (Section::Pool, "listen.owner"),
    (Section::Pool, "listen.group"),
    (Section::Pool, "listen.mode"),
    (Section::Pool, "listen.allowed_clients"),
    (Section::Pool, "listen.setfib"),
    (Section::Pool, "process.priority"),
    (Section::Pool, "process.dumpable"),
    (Section::Pool, "pm"),
    (Section::Pool, "pm.max_children"),
    (Section::Pool, "pm.start_servers"),
    (Section::Pool, "pm.min_spare_servers"),
    (Section::Pool, "pm.max_spare_servers"),
    (Section::Pool, "pm.max_spawn_rate"),
    (Section::Pool, "pm.process_idle_timeout"),
    (Section::Pool, "pm.max_requests"),
    (Section::Pool, "pm.status_path"),
    (Section::Pool, "pm.status_listen"),
    (Section::Pool, "ping.path"),
    (Section::Pool, "ping.response"),
    (Section::Pool, "access.log"),
    (Section::Pool, "access.format"),
    (Section::Pool, "slowlog"),
    (Section::Pool, "request_slowlog_timeout"),
    (Section::Pool, "request_slowlog_trace_depth"),
    (Section::Pool, "request_terminate_timeout"),
    (Section::Pool, "request_terminate_timeout_track_finished"),
    (Section::Pool, "rlimit_files"),
    (Section::Pool, "rlimit_core"),
    (Section::Pool, "chroot"),
    (Section::Pool, "chdir"),
    (Section::Pool, "catch_workers_output"),
    (Section::Pool, "decorate_workers_output"),
    (Section::Pool, "clear_env"),
    (Section::Pool, "security.limit_extensions"),
    (Section::Pool, "apparmor_hat"),
    (Section::Pool, "access.suppress_path[]"),
    (Section::Pool, "env[]"),
    (Section::Pool, "php_value[]"),
    (Section::Pool, "php_flag[]"),
    (Section::Pool, "php_admin_value[]"),
    (Section::Pool, "php_admin_flag[]"),
];

/// Renders every generated file from the sources under `root` (the repository).
///
/// # Errors
///
/// A Markdown source cannot be read, or it does not match the code (a directive
/// without a description, a description without a directive, an unknown marker).
pub fn generate(root: &Path) -> Result<Vec<Generated>, String> {
    let read =
        |rel: &str| std::fs::read_to_string(root.join(rel)).map_err(|e| format!("{rel}: {e}"));
    let mut out = vec![
        Generated {
            path: "docs/man/php-fpm-rs.8".into(),
            contents: man8(&read("docs/man/php-fpm-rs.8.md")?)?.into_bytes(),
        },
        Generated {
            path: "docs/man/php-fpm-rs.conf.5".into(),
            contents: conf5(&read("docs/man/php-fpm-rs.conf.5.md")?)?.into_bytes(),
        },
    ];
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = cli::command();
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "php-fpm-rs", &mut buf);
        out.push(Generated {
            path: Path::new("docs/completions").join(shell.file_name("php-fpm-rs")),
            contents: buf,
        });
    }
    Ok(out)
}

fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// `8.2` from `8.2.35`: the PHP branch the binary is built against.
fn php_branch() -> String {
    php::PHP_VERSION
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".")
}

/// Replaces the `@NAME@` placeholders the Markdown may use.
fn substitute(src: &str) -> String {
    src.replace("@VERSION@", version())
        .replace("@PHP_BRANCH@", &php_branch())
        .replace("@DEFAULT_CONFIG@", cli::DEFAULT_CONFIG)
}

fn clap_part(render: impl Fn(&clap_mangen::Man, &mut Vec<u8>) -> std::io::Result<()>) -> String {
    let man = clap_mangen::Man::new(cli::command());
    let mut buf = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = render(&man, &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn man8(src: &str) -> Result<String, String> {
    let mut out = title("PHP-FPM-RS", 8, "System Manager's Manual");
    let mut hook = |marker: &str, _: &Ctx| -> Result<String, String> {
        match marker {
            "name" => Ok(clap_part(|m, w| m.render_name_section(w))),
            "synopsis" => Ok(clap_part(|m, w| m.render_synopsis_section(w))),
            "options" => Ok(clap_part(|m, w| m.render_options_section(w))),
            "exit-status" => {
                let mut s = String::new();
                for (code, meaning) in cli::exit::ALL {
                    let _ = writeln!(s, ".TP\n.B {code}\n{}", escape(meaning, false));
                }
                Ok(s)
            }
            other => Err(format!("php-fpm-rs.8.md: unknown marker '{other}'")),
        }
    };
    out.push_str(&markdown(&substitute(src), &mut hook, &mut |_, _| {
        Err("php-fpm-rs.8.md: '###' is only for directives in php-fpm-rs.conf.5.md".into())
    })?);
    Ok(out)
}

fn section_of(heading: &str) -> Option<Section> {
    match heading {
        "GLOBAL DIRECTIVES" => Some(Section::Global),
        "POOL DIRECTIVES" => Some(Section::Pool),
        _ => None,
    }
}

fn in_php_fpm(section: Section, name: &str) -> bool {
    PHP_FPM_82.iter().any(|&(s, n)| s == section && n == name)
}

fn names(list: &[&str]) -> String {
    if list.is_empty() {
        return "none.".to_string();
    }
    let mut s = list
        .iter()
        .map(|n| format!("\\fB\\%{}\\fR", escape(n, true)))
        .collect::<Vec<_>>()
        .join(", ");
    s.push('.');
    s
}

fn conf5(src: &str) -> Result<String, String> {
    let code = config::directives();
    let mut documented: BTreeSet<(u8, String)> = BTreeSet::new();
    let key = |s: Section| match s {
        Section::Global => 0u8,
        Section::Pool => 1u8,
    };
    let mut out = title("PHP-FPM-RS.CONF", 5, "File Formats Manual");
    let mut item = |name: &str, ctx: &Ctx| -> Result<String, String> {
        let section = ctx.section.as_deref().and_then(section_of).ok_or_else(|| {
            format!("php-fpm-rs.conf.5.md: '### {name}' outside the directive sections")
        })?;
        let d = code
            .iter()
            .find(|d| d.section == section && d.name == name)
            .ok_or_else(|| {
                format!("php-fpm-rs.conf.5.md: '### {name}' is not a {section:?} directive of src/config/directives.rs")
            })?;
        if !documented.insert((key(section), name.to_string())) {
            return Err(format!(
                "php-fpm-rs.conf.5.md: '### {name}' twice in {section:?}"
            ));
        }
        let mut s = format!(".TP\n.B \\%{}\n", escape(name, true));
        if !d.implemented {
            s.push_str("[\\fInot supported yet:\\fR accepted and checked, named in a warning at start\\-up, no effect]\n.br\n");
        }
        if !in_php_fpm(section, name) {
            s.push_str(
                "[\\fIphp\\-fpm\\-rs only:\\fR php\\-fpm 8.2 does not know this directive]\n.br\n",
            );
        }
        Ok(s)
    };
    let mut hook = |marker: &str, _: &Ctx| -> Result<String, String> {
        match marker {
            "compatibility" => Ok(compatibility()),
            other => Err(format!("php-fpm-rs.conf.5.md: unknown marker '{other}'")),
        }
    };
    let body = markdown(&substitute(src), &mut hook, &mut item)?;
    let missing: Vec<String> = code
        .iter()
        .filter(|d| !documented.contains(&(key(d.section), d.name.to_string())))
        .map(|d| format!("{:?} {}", d.section, d.name))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "php-fpm-rs.conf.5.md: no '### name' description for: {}",
            missing.join(", ")
        ));
    }
    out.push_str(&body);
    Ok(out)
}

/// The COMPATIBILITY lists, computed from the code and php-fpm 8.2's table.
fn compatibility() -> String {
    let code = config::directives();
    // Left-aligned: long names in a justified line leave wide gaps.
    let mut s = String::from(".ad l\n");
    for (section, label) in [(Section::Global, "[global]"), (Section::Pool, "pool")] {
        let pending: Vec<&str> = code
            .iter()
            .filter(|d| d.section == section && !d.implemented)
            .map(|d| d.name)
            .collect();
        let _ = writeln!(
            s,
            ".TP\n.B Not supported yet ({label})\n{}",
            names(&pending)
        );
    }
    let added: Vec<&str> = code
        .iter()
        .filter(|d| !in_php_fpm(d.section, d.name))
        .map(|d| d.name)
        .collect();
    let _ = writeln!(s, ".TP\n.B Added by php\\-fpm\\-rs\n{}", names(&added));
    let refused: Vec<&str> = PHP_FPM_82
        .iter()
        .filter(|&&(section, name)| !code.iter().any(|d| d.section == section && d.name == name))
        .map(|&(_, name)| name)
        .collect();
    let _ = writeln!(
        s,
        ".TP\n.B php\\-fpm 8.2 directives php\\-fpm\\-rs refuses\n{}",
        names(&refused)
    );
    if !refused.is_empty() {
        s.push_str(".IP\nSuch a line is an \\(lqunknown entry\\(rq error, as for any directive php\\-fpm\\-rs does not know.\n");
    }
    s.push_str(".ad\n");
    s
}

fn title(name: &str, section: u8, manual: &str) -> String {
    format!(
        ".\\\" Generated by `cargo run --example gen-docs` from docs/man/*.md and the code: do not edit.\n.TH {name} {section} \"\" \"php\\-fpm\\-rs {}\" \"{manual}\"\n",
        version()
    )
}

/// Escapes text for roff. In `literal` text (code, names, paths) '-' is a minus
/// sign, so it can be copied and pasted; elsewhere it stays a hyphen.
fn escape(text: &str, literal: bool) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => s.push_str("\\e"),
            '-' if literal => s.push_str("\\-"),
            _ => s.push(c),
        }
    }
    s
}

/// Inline Markdown: `code` and **bold** are bold, *emphasis* is italic.
fn inline(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (open, close, font, literal) = if rest.starts_with('`') {
            ("`", "`", "B", true)
        } else if rest.starts_with("**") {
            ("**", "**", "B", false)
        } else if rest.starts_with('*') {
            ("*", "*", "I", true)
        } else {
            let next = rest[1..].find(['`', '*']).map_or(rest.len(), |i| i + 1);
            out.push_str(&escape(&rest[..next], false));
            rest = &rest[next..];
            continue;
        };
        let body = &rest[open.len()..];
        match body.find(close) {
            Some(end) if end > 0 => {
                // \% keeps names and paths from being hyphenated.
                let nohyphen = if literal { "\\%" } else { "" };
                let _ = write!(
                    out,
                    "\\f{font}{nohyphen}{}\\fR",
                    escape(&body[..end], literal)
                );
                rest = &body[end + close.len()..];
            }
            _ => {
                out.push_str(&escape(open, false));
                rest = body;
            }
        }
    }
    out
}

/// A text line for roff: inline markup, and no '.' or '\'' where a request would start.
fn text_line(line: &str) -> String {
    let s = inline(line.trim());
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// Where the Markdown walker is, for the hooks.
pub struct Ctx {
    /// The current `#` heading.
    pub section: Option<String>,
}

type Hook<'a> = dyn FnMut(&str, &Ctx) -> Result<String, String> + 'a;

/// What the text being walked belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Item {
    /// Top level: paragraphs start with .PP.
    None,
    /// A `###` entry: every paragraph up to the next heading belongs to it.
    Heading,
    /// A definition: paragraphs indented four spaces belong to it.
    Definition,
}

/// The Markdown subset of docs/man: `#` sections, `##` subsections, `###` items
/// (rendered by `item`), paragraphs, `- ` bullets (top level only), "term" +
/// ":   definition" lists (continued by paragraphs indented four spaces), ```
/// blocks, and `<!-- generated: NAME -->` markers (rendered by `marker`).
fn markdown(src: &str, marker: &mut Hook<'_>, item: &mut Hook<'_>) -> Result<String, String> {
    let lines: Vec<&str> = src.lines().collect();
    let mut out = String::new();
    let mut ctx = Ctx { section: None };
    let mut within = Item::None;
    // The item's tag was just written: its first paragraph follows without a request.
    let mut fresh = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            i += 1;
            continue;
        }
        let indented = line.starts_with("    ");
        if trimmed.starts_with("<!--") && !trimmed.starts_with("<!-- generated: ") {
            // A comment for the editors of the Markdown, not for the reader.
            while i < lines.len() && !lines[i].contains("-->") {
                i += 1;
            }
            i += 1;
        } else if let Some(h) = trimmed.strip_prefix("# ") {
            let _ = writeln!(out, ".SH {}", escape(h.trim(), false));
            ctx.section = Some(h.trim().to_string());
            (within, fresh) = (Item::None, false);
            i += 1;
        } else if let Some(h) = trimmed.strip_prefix("## ") {
            let _ = writeln!(out, ".SS {}", escape(h.trim(), false));
            (within, fresh) = (Item::None, false);
            i += 1;
        } else if let Some(h) = trimmed.strip_prefix("### ") {
            out.push_str(&item(h.trim(), &ctx)?);
            (within, fresh) = (Item::Heading, true);
            i += 1;
        } else if let Some(m) = trimmed
            .strip_prefix("<!-- generated: ")
            .and_then(|m| m.strip_suffix(" -->"))
        {
            out.push_str(&marker(m.trim(), &ctx)?);
            (within, fresh) = (Item::None, false);
            i += 1;
        } else if trimmed.trim_start().starts_with("```") {
            let mut code = Vec::new();
            i += 1;
            while i < lines.len() && !lines[i].trim_start().starts_with("```") {
                code.push(lines[i]);
                i += 1;
            }
            i += 1;
            let nested = within == Item::Heading || (within == Item::Definition && indented);
            out.push_str(if nested {
                ".IP\n.nf\n"
            } else {
                ".PP\n.RS 4\n.nf\n"
            });
            for c in code {
                let c = if indented {
                    c.get(4..).unwrap_or("")
                } else {
                    c
                };
                let e = escape(c, true);
                if e.starts_with('.') || e.starts_with('\'') {
                    out.push_str("\\&");
                }
                out.push_str(&e);
                out.push('\n');
            }
            out.push_str(if nested { ".fi\n" } else { ".fi\n.RE\n" });
            if !nested {
                within = Item::None;
            }
            fresh = false;
        } else if let Some(first) = trimmed.strip_prefix("- ") {
            if within == Item::Heading {
                return Err(format!(
                    "bullets are not supported inside '###' items: {trimmed}"
                ));
            }
            out.push_str(".IP \\(bu 2\n");
            out.push_str(&text_line(first));
            out.push('\n');
            i += 1;
            while i < lines.len() && lines[i].starts_with("  ") && !lines[i].trim().is_empty() {
                out.push_str(&text_line(lines[i]));
                out.push('\n');
                i += 1;
            }
            (within, fresh) = (Item::None, false);
        } else if i + 1 < lines.len() && lines[i + 1].starts_with(":   ") {
            if within == Item::Heading {
                return Err(format!(
                    "definitions are not supported inside '###' items: {trimmed}"
                ));
            }
            let _ = writeln!(out, ".TP\n{}", text_line(trimmed));
            i += 1;
            while i < lines.len() && (lines[i].starts_with(":   ") || lines[i].starts_with("    "))
            {
                out.push_str(&text_line(&lines[i][4..]));
                out.push('\n');
                i += 1;
            }
            (within, fresh) = (Item::Definition, false);
        } else {
            // A paragraph, up to the next blank line.
            let continues = within == Item::Heading || (within == Item::Definition && indented);
            if !continues {
                out.push_str(".PP\n");
                within = Item::None;
            } else if !fresh {
                out.push_str(".IP\n");
            }
            while i < lines.len() && !lines[i].trim().is_empty() {
                out.push_str(&text_line(lines[i]));
                out.push('\n');
                i += 1;
            }
            fresh = false;
        }
    }
    Ok(out)
}
