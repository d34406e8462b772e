//! Reader for the INI dialect php-fpm feeds to the zend INI scanner (normal mode).
//!
//! We do not use the `configparser` crate named in the design: it drops line
//! numbers (every error here must say file:line) and folds repeated keys into one,
//! while php-fpm relies on repeated `include`, `env[..]` and `php_value[..]` lines.
//!
//! php-fpm hands the scanner one line at a time (`fpm_conf_load_ini_file`), so a
//! value never spans lines; we parse line by line too. Facts checked against
//! php-fpm 8.2: only `;` starts a comment (a `#` line is an entry without a value);
//! `${VAR}` expands outside quotes and inside double quotes, never in single quotes;
//! whitespace next to quoted strings is dropped (`'a' "b" c` is `abc`); bare
//! on/yes/true give "1" and off/no/false/none/null give ""; `E_*` constants and
//! `& | ^ ~ ! ( )` are evaluated, so `E_ALL & ~E_DEPRECATED` is `24575`.

use super::{ConfigError, Location};
use std::path::Path;

/// One meaningful line of an INI file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `[name]`: starts a section.
    Section {
        /// Section name exactly as php-fpm sees it (not trimmed, like php-fpm).
        name: String,
        /// Where the header is.
        location: Location,
    },
    /// `key = value` or `key[index] = value`.
    Entry {
        /// Directive name, trimmed.
        key: String,
        /// The part in brackets, for `php_value[x]`, `env[X]`, `access.suppress_path[]`.
        index: Option<String>,
        /// The value after quoting, expansion and boolean conversion.
        value: String,
        /// Where the line is.
        location: Location,
    },
}

/// Parses `text` as php-fpm would: one result per meaningful line, in order, so
/// the caller can report every bad line and still apply the good ones.
pub fn parse(
    text: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<Result<Item, ConfigError>> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let location = Location::new(file, n + 1);
        match parse_line(raw, env) {
            Ok(None) => {}
            Ok(Some(Line::Section(name))) => out.push(Ok(Item::Section { name, location })),
            Ok(Some(Line::Entry { key, index, value })) => out.push(Ok(Item::Entry {
                key,
                index,
                value,
                location,
            })),
            Err(message) => out.push(Err(ConfigError::Syntax { location, message })),
        }
    }
    out
}

enum Line {
    Section(String),
    Entry {
        key: String,
        index: Option<String>,
        value: String,
    },
}

fn parse_line(raw: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Line>, String> {
    let line = raw.trim_end_matches('\r').trim_start();
    if line.is_empty() || line.starts_with(';') {
        return Ok(None);
    }
    if let Some(rest) = line.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| "syntax error: expected ']' to close the section name".to_string())?;
        let after = rest[end + 1..].trim_start();
        if !(after.is_empty() || after.starts_with(';')) {
            return Err(format!("syntax error: unexpected '{after}' after section"));
        }
        let name = &rest[..end];
        let name = unquote(name).unwrap_or(name);
        return Ok(Some(Line::Section(name.to_string())));
    }
    let key_end = line.find(['=', '[']).ok_or_else(|| {
        format!(
            "entry '{}' has no value: expected 'name = value'",
            line.trim_end()
        )
    })?;
    let key = line[..key_end].trim().to_string();
    if key.is_empty() {
        return Err("syntax error: unexpected '=' at the start of the line".to_string());
    }
    let mut rest = &line[key_end..];
    let mut index = None;
    if let Some(inner) = rest.strip_prefix('[') {
        let close = inner
            .find(']')
            .ok_or_else(|| format!("syntax error: expected ']' after '{key}['"))?;
        // php keeps trailing blanks inside the brackets but drops leading ones.
        let idx = inner[..close].trim_start();
        index = Some(unquote(idx).unwrap_or(idx).to_string());
        rest = inner[close + 1..].trim_start();
    }
    let value = rest
        .strip_prefix('=')
        .ok_or_else(|| format!("entry '{key}' has no value: expected 'name = value'"))?;
    let value = parse_value(value, env)?;
    Ok(Some(Line::Entry { key, index, value }))
}

/// Strips one pair of surrounding double quotes, if the whole text is quoted.
fn unquote(s: &str) -> Option<&str> {
    s.strip_prefix('"').and_then(|s| s.strip_suffix('"'))
}

/// A lexical piece of a value.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// Unquoted text.
    Raw(String),
    /// Text from a quoted string or `${VAR}` (never trimmed, never a keyword).
    Quoted(String),
    /// `${VAR}` result: kept apart so blanks around it survive, as in php.
    Var(String),
    /// One of `& | ^ ~ ! ( )`.
    Op(char),
}

fn parse_value(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let toks = tokenize(text, env)?;
    let toks = trim_raw(toks);
    if toks.iter().any(|t| matches!(t, Tok::Op(_))) {
        let mut p = ExprParser {
            toks: &toks,
            pos: 0,
        };
        let v = p.expr()?;
        if p.pos != toks.len() {
            return Err("syntax error in expression".to_string());
        }
        return Ok(v.into_string());
    }
    if let [Tok::Raw(word)] = toks.as_slice() {
        if let Some(b) = keyword(word) {
            return Ok(b.to_string());
        }
        if let Some(n) = constant(word) {
            return Ok(n.to_string());
        }
    }
    Ok(toks
        .into_iter()
        .map(|t| match t {
            Tok::Raw(s) | Tok::Quoted(s) | Tok::Var(s) => s,
            Tok::Op(c) => c.to_string(),
        })
        .collect())
}

fn tokenize(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut raw = String::new();
    let mut chars = text.chars().peekable();
    let flush = |raw: &mut String, toks: &mut Vec<Tok>| {
        if !raw.is_empty() {
            toks.push(Tok::Raw(std::mem::take(raw)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            ';' => break,
            '=' => return Err("syntax error: unexpected '=' in value".to_string()),
            '"' => {
                flush(&mut raw, &mut toks);
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("syntax error: unterminated double quote".to_string()),
                        Some('"') => break,
                        // Only \" and \\ are escapes; php keeps other backslashes.
                        Some('\\') if matches!(chars.peek(), Some('"') | Some('\\')) => {
                            s.extend(chars.next());
                        }
                        Some('$') if chars.peek() == Some(&'{') => {
                            chars.next();
                            s.push_str(&read_var(&mut chars, env)?);
                        }
                        Some(c) => s.push(c),
                    }
                }
                toks.push(Tok::Quoted(s));
            }
            '\'' => {
                flush(&mut raw, &mut toks);
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("syntax error: unterminated single quote".to_string()),
                        Some('\'') => break,
                        Some(c) => s.push(c),
                    }
                }
                toks.push(Tok::Quoted(s));
            }
            '$' if chars.peek() == Some(&'{') => {
                chars.next();
                flush(&mut raw, &mut toks);
                toks.push(Tok::Var(read_var(&mut chars, env)?));
            }
            '&' | '|' | '^' | '~' | '!' | '(' | ')' => {
                flush(&mut raw, &mut toks);
                toks.push(Tok::Op(c));
            }
            c => raw.push(c),
        }
    }
    flush(&mut raw, &mut toks);
    Ok(toks)
}

fn read_var(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut name = String::new();
    for c in chars.by_ref() {
        if c == '}' {
            // An unset variable expands to nothing, as in php.
            return Ok(env(&name).unwrap_or_default());
        }
        name.push(c);
    }
    Err("syntax error: '${' without closing '}'".to_string())
}

/// Trims blanks of raw runs at the value's ends and next to quoted strings and
/// operators, and drops runs that become empty; blanks next to `${VAR}` stay.
fn trim_raw(toks: Vec<Tok>) -> Vec<Tok> {
    let n = toks.len();
    let sticky = |t: Option<&Tok>| matches!(t, Some(Tok::Var(_)));
    let mut out = Vec::with_capacity(n);
    for (i, t) in toks.iter().enumerate() {
        if let Tok::Raw(s) = t {
            let mut s = s.as_str();
            if !sticky(i.checked_sub(1).and_then(|j| toks.get(j))) {
                s = s.trim_start_matches([' ', '\t']);
            }
            if !sticky(toks.get(i + 1)) {
                s = s.trim_end_matches([' ', '\t']);
            }
            if !s.is_empty() {
                out.push(Tok::Raw(s.to_string()));
            }
        } else {
            out.push(t.clone());
        }
    }
    out
}

/// php's INI booleans: the keyword alone, case-insensitive.
fn keyword(word: &str) -> Option<&'static str> {
    match word.to_ascii_lowercase().as_str() {
        "on" | "yes" | "true" => Some("1"),
        "off" | "no" | "false" | "none" | "null" => Some(""),
        _ => None,
    }
}

/// The PHP constants php.ini users put in pool files (error_reporting levels).
/// Other constants (PHP_VERSION, ...) stay literal: this module knows no PHP.
fn constant(word: &str) -> Option<i64> {
    Some(match word {
        "E_ERROR" => 1,
        "E_WARNING" => 2,
        "E_PARSE" => 4,
        "E_NOTICE" => 8,
        "E_CORE_ERROR" => 16,
        "E_CORE_WARNING" => 32,
        "E_COMPILE_ERROR" => 64,
        "E_COMPILE_WARNING" => 128,
        "E_USER_ERROR" => 256,
        "E_USER_WARNING" => 512,
        "E_USER_NOTICE" => 1024,
        "E_STRICT" => 2048,
        "E_RECOVERABLE_ERROR" => 4096,
        "E_DEPRECATED" => 8192,
        "E_USER_DEPRECATED" => 16384,
        "E_ALL" => 32767,
        _ => return None,
    })
}

enum Val {
    Str(String),
    Int(i64),
}

impl Val {
    fn int(&self) -> i64 {
        match self {
            Val::Int(n) => *n,
            // Like php's string-to-int in the INI parser: leading digits, else 0.
            Val::Str(s) => {
                let t = s.trim();
                let (neg, digits) = match t.strip_prefix('-') {
                    Some(d) => (true, d),
                    None => (false, t),
                };
                let end = digits
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(digits.len());
                let n: i64 = digits[..end].parse().unwrap_or(0);
                if neg {
                    -n
                } else {
                    n
                }
            }
        }
    }
    fn into_string(self) -> String {
        match self {
            Val::Int(n) => n.to_string(),
            Val::Str(s) => s,
        }
    }
}

/// Grammar of zend_ini_parser.y: `| & ^` share one precedence, left to right;
/// `~ !` are unary; parentheses group.
struct ExprParser<'a> {
    toks: &'a [Tok],
    pos: usize,
}

impl ExprParser<'_> {
    fn expr(&mut self) -> Result<Val, String> {
        let mut left = self.unary()?;
        while let Some(Tok::Op(op @ ('|' | '&' | '^'))) = self.toks.get(self.pos) {
            self.pos += 1;
            let right = self.unary()?;
            let (a, b) = (left.int(), right.int());
            left = Val::Int(match op {
                '|' => a | b,
                '&' => a & b,
                _ => a ^ b,
            });
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Val, String> {
        match self.toks.get(self.pos) {
            Some(Tok::Op('~')) => {
                self.pos += 1;
                Ok(Val::Int(!self.unary()?.int()))
            }
            Some(Tok::Op('!')) => {
                self.pos += 1;
                Ok(Val::Int(i64::from(self.unary()?.int() == 0)))
            }
            Some(Tok::Op('(')) => {
                self.pos += 1;
                let v = self.expr()?;
                match self.toks.get(self.pos) {
                    Some(Tok::Op(')')) => {
                        self.pos += 1;
                        Ok(v)
                    }
                    _ => Err("syntax error: expected ')'".to_string()),
                }
            }
            Some(Tok::Raw(s)) => {
                self.pos += 1;
                Ok(match constant(s) {
                    Some(n) => Val::Int(n),
                    None => Val::Str(s.clone()),
                })
            }
            Some(Tok::Quoted(s) | Tok::Var(s)) => {
                self.pos += 1;
                Ok(Val::Str(s.clone()))
            }
            Some(Tok::Op(c)) => Err(format!("syntax error: unexpected '{c}'")),
            None => Err("syntax error: expression ends too early".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> Result<String, String> {
        let env = |k: &str| (k == "FOO").then(|| "foo".to_string());
        parse_value(text, &env)
    }

    #[test]
    fn values_match_what_php_fpm_8_2_produced() {
        let cases = [
            ("9000 ; comment", "9000"),
            ("x # hash", "x # hash"),
            ("'single ${FOO}'", "single ${FOO}"),
            ("\"dq ${FOO}\"", "dq foo"),
            ("${FOO}/x", "foo/x"),
            ("yes", "1"),
            ("OFF", ""),
            ("none", ""),
            ("\"yes\"", "yes"),
            ("foo\"bar\"baz", "foobarbaz"),
            ("${NOPE}x", "x"),
            ("1 2   3", "1 2   3"),
            ("\"a\\\"b\"", "a\"b"),
            ("\"a\\\\b\\nc\"", "a\\b\\nc"),
            ("E_ALL & ~E_DEPRECATED", "24575"),
            ("1|2", "3"),
            ("E_ALL", "32767"),
            ("~4", "-5"),
            ("(a)", "a"),
            ("!1", "0"),
            ("a&b", "0"),
            ("'a' \"b\" c", "abc"),
            ("a ${NOPE}", "a "),
            ("foo bar ${FOO} baz", "foo bar foo baz"),
            ("a#b", "a#b"),
            ("/a/b{c}", "/a/b{c}"),
            ("", ""),
            ("  spaced   ", "spaced"),
            ("a;b", "a"),
            ("\"a;b\"", "a;b"),
        ];
        for (input, want) in cases {
            assert_eq!(value(input).as_deref(), Ok(want), "input {input:?}");
        }
    }

    #[test]
    fn values_php_rejects_are_syntax_errors() {
        for input in ["x=y", "a\"b", "\"a", "a!b", "${X", "(1"] {
            assert!(value(input).is_err(), "input {input:?} should fail");
        }
    }

    #[test]
    fn hash_line_is_an_entry_without_value_not_a_comment() {
        let out = parse("# note\n; real comment\n", Path::new("f"), &|_| None);
        assert_eq!(out.len(), 1);
        let err = out[0].as_ref().err().map(ToString::to_string);
        assert!(err.is_some_and(|e| e.starts_with("f:1: ")));
    }

    #[test]
    fn bracketed_keys_keep_the_index_and_line_numbers() {
        let items: Result<Vec<Item>, ConfigError> = parse(
            "[www]\n\nphp_value[error_log] = /x\nenv[\"PATH\"] = /bin\n",
            Path::new("f"),
            &|_| None,
        )
        .into_iter()
        .collect();
        let items = items.expect("no syntax errors");
        assert_eq!(
            items[1],
            Item::Entry {
                key: "php_value".into(),
                index: Some("error_log".into()),
                value: "/x".into(),
                location: Location::new(Path::new("f"), 3),
            }
        );
        assert!(matches!(&items[2], Item::Entry { index: Some(i), .. } if i == "PATH"));
    }
}
