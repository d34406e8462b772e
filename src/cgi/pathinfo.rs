//! php-fpm's `init_request_info`: which file to run and what SCRIPT_NAME, PATH_INFO
//! and PATH_TRANSLATED become, for nginx, Apache mod_proxy_fcgi and plain CGI callers.
//! The rules are php-fpm 8.2's, step for step, so existing front-end configs behave
//! the same; comments name the case each step exists for.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::Env;

/// The ini settings that steer the fix-up.
#[derive(Debug, Clone, Default)]
pub struct PathSettings {
    /// `cgi.fix_pathinfo`.
    pub fix_pathinfo: bool,
    /// `cgi.discard_path`.
    pub discard_path: bool,
    /// `fastcgi.script_path_encoded`.
    pub script_path_encoded: bool,
    /// `doc_root`, used when the request has no DOCUMENT_ROOT.
    pub doc_root: Option<Vec<u8>>,
}

/// The outcome: the script to run (`None`: 404) and the base of PHP_SELF.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// The file PHP opens; `None` means "File not found.".
    pub script_filename: Option<Vec<u8>>,
    /// SCRIPT_NAME after the fix-up (PHP's request_uri).
    pub request_uri: Option<Vec<u8>>,
}

fn is_regular_file(p: &[u8]) -> bool {
    std::fs::metadata(Path::new(OsStr::from_bytes(p))).is_ok_and(|m| m.is_file())
}

/// Whether `p` exists with every symlink resolved, straight from the filesystem. The
/// worker passes PHP's realpath cache instead (see [`resolve`]).
pub fn exists_on_disk(p: &[u8]) -> bool {
    std::fs::canonicalize(Path::new(OsStr::from_bytes(p))).is_ok()
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// `%XX` decoding without `+` → space (php_raw_url_decode).
fn raw_url_decode(s: &[u8]) -> Vec<u8> {
    let hex = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(h), Some(l)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Strips Apache's `proxy:fcgi://host:port` / `proxy:balancer://name` prefix and any
/// query string from SCRIPT_FILENAME. Returns whether it was there.
fn strip_apache_proxy_prefix(filename: &mut Vec<u8>) -> bool {
    let mut stripped = false;
    for prefix in [&b"proxy:fcgi://"[..], b"proxy:balancer://"] {
        if starts_with_ignore_case(filename, prefix) {
            if let Some(slash) = filename[prefix.len()..].iter().position(|&c| c == b'/') {
                filename.drain(..prefix.len() + slash);
                stripped = true;
            }
            if let Some(q) = filename.iter().position(|&c| c == b'?') {
                filename.truncate(q);
            }
        }
    }
    stripped
}

fn find(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Applies php-fpm's fix-up to `env` (adding ORIG_* copies where values change).
/// `exists` says whether a path exists once resolved (php-fpm asks PHP's realpath
/// cache, which answers a known script without a system call).
pub fn resolve(env: &mut Env, s: &PathSettings, exists: &dyn Fn(&[u8]) -> bool) -> Resolved {
    let mut env_script_filename = env.get(b"SCRIPT_FILENAME").map(<[u8]>::to_vec);
    let env_path_translated = env.get(b"PATH_TRANSLATED").map(<[u8]>::to_vec);
    let mut out = Resolved::default();
    if env_script_filename.is_none() && env_path_translated.is_none() {
        return out;
    }
    let mut env_path_info = env.get(b"PATH_INFO").map(<[u8]>::to_vec);
    let mut env_script_name = env.get(b"SCRIPT_NAME").map(<[u8]>::to_vec);

    // IIS sends PATH_INFO with SCRIPT_NAME in front of it.
    let iis = env
        .get(b"SERVER_SOFTWARE")
        .is_some_and(|v| v.starts_with(b"Microsoft-IIS"));
    if let (true, Some(pi), Some(sn)) = (iis, env_path_info.clone(), env_script_name.as_ref()) {
        if pi.starts_with(sn) {
            env.set(b"ORIG_PATH_INFO", &pi);
            let rest = pi[sn.len()..].to_vec();
            if rest.is_empty() {
                env.unset(b"PATH_INFO");
                env_path_info = None;
            } else {
                env.set(b"PATH_INFO", &rest);
                env_path_info = Some(rest);
            }
        }
    }

    // Apache mod_proxy_fcgi puts a proxy URL into SCRIPT_FILENAME.
    let mut apache_was_here = false;
    if let Some(f) = env_script_filename.as_mut() {
        let before = f.clone();
        apache_was_here = strip_apache_proxy_prefix(f);
        if apache_was_here && !s.script_path_encoded {
            *f = raw_url_decode(f);
        }
        if *f != before {
            env.set(b"SCRIPT_FILENAME", f);
        }
    }
    let mut script_path_translated = env_script_filename
        .clone()
        .or_else(|| env_path_translated.clone());

    if !s.fix_pathinfo {
        // pre-4.3 behaviour, kept for compatibility
        out.request_uri = env_path_info.clone().or(env_script_name.clone());
        if !s.discard_path && env_path_translated.is_some() {
            script_path_translated = env_path_translated;
        }
        out.script_filename = script_path_translated;
        return out;
    }

    let env_redirect_url = env.get(b"REDIRECT_URL").map(<[u8]>::to_vec);
    let mut env_document_root = env.get(b"DOCUMENT_ROOT").map(<[u8]>::to_vec);
    let orig_path_translated = env_path_translated.clone();
    let orig_path_info = env_path_info.clone();
    let orig_script_name = env_script_name.clone();
    let orig_script_filename = env_script_filename.clone();
    let mut script_name_changed = false;

    if env_document_root.is_none() {
        if let Some(root) = &s.doc_root {
            env.set(b"DOCUMENT_ROOT", root);
            env_document_root = Some(root.clone());
        }
    }

    // Apache mod_fastcgi: SCRIPT_FILENAME names the PHP binary; the script is PATH_TRANSLATED.
    if !apache_was_here {
        if let (Some(pt), Some(redirect)) = (&env_path_translated, &env_redirect_url) {
            if Some(pt) != script_path_translated.as_ref() {
                script_path_translated = Some(pt.clone());
                env_script_name = Some(redirect.clone());
                script_name_changed = true;
            }
        }
    }

    let Some(spt) = script_path_translated.clone().filter(|p| !p.is_empty()) else {
        out.request_uri = env_script_name;
        return out;
    };

    if spt.ends_with(b"/") || !exists(&spt) {
        // /info.php/test: walk back through the slashes to find the script.
        let len = spt.len();
        let mut pt = spt.clone();
        let mut found = false;
        while let Some(cut) = pt.iter().rposition(|&c| c == b'/' || c == b'\\') {
            pt.truncate(cut);
            if !is_regular_file(&pt) {
                continue;
            }
            found = true;
            let slen = len - pt.len();
            let pilen = env_path_info.as_ref().map_or(0, Vec::len);
            let (path_info, tflag) = if apache_was_here {
                let pi = spt[pt.len()..].to_vec();
                let t = slen != 0 && orig_path_info.as_ref() != Some(&pi);
                (Some(pi), t)
            } else {
                let pi = env_path_info
                    .as_ref()
                    .filter(|_| pilen > slen)
                    .map(|p| p[pilen - slen..].to_vec());
                let t = pi.is_some();
                (pi, t)
            };
            if let (true, Some(path_info)) = (tflag, path_info) {
                let mut decoded = None;
                if let Some(opi) = &orig_path_info {
                    env.set(b"ORIG_PATH_INFO", opi);
                    // SCRIPT_NAME becomes the part of PATH_INFO before the new PATH_INFO.
                    let head = env_path_info
                        .as_ref()
                        .map(|p| p[..pilen - slen].to_vec())
                        .unwrap_or_default();
                    if orig_script_name.as_ref() != Some(&head) {
                        if let Some(osn) = &orig_script_name {
                            env.set(b"ORIG_SCRIPT_NAME", osn);
                        }
                        env.set(b"SCRIPT_NAME", &head);
                        out.request_uri = Some(head);
                    } else {
                        out.request_uri = orig_script_name.clone();
                    }
                } else if let (true, Some(sn)) = (apache_was_here, env_script_name.clone()) {
                    // mod_proxy_fcgi with ProxyPass cannot set PATH_INFO; it is also at
                    // the end of SCRIPT_NAME and must be cut from there.
                    if s.script_path_encoded && path_info.contains(&b'%') {
                        decoded = Some(raw_url_decode(&path_info));
                    }
                    let snlen = sn.len();
                    let cut_at = if snlen > slen && sn[snlen - slen..] == path_info[..] {
                        Some(snlen - slen)
                    } else {
                        decoded
                            .as_ref()
                            .filter(|d| snlen > d.len() && sn[snlen - d.len()..] == d[..])
                            .map(|d| snlen - d.len())
                    };
                    if let Some(at) = cut_at {
                        if let Some(osn) = &orig_script_name {
                            env.set(b"ORIG_SCRIPT_NAME", osn);
                        }
                        let head = sn[..at].to_vec();
                        env.set(b"SCRIPT_NAME", &head);
                        env_script_name = Some(head.clone());
                        out.request_uri = Some(head);
                    }
                }
                let new_pi = decoded.unwrap_or(path_info);
                env.set(b"PATH_INFO", &new_pi);
                env_path_info = Some(new_pi);
            }
            if orig_script_filename.as_ref() != Some(&pt) {
                if let Some(osf) = &orig_script_filename {
                    env.set(b"ORIG_SCRIPT_FILENAME", osf);
                }
                env.set(b"SCRIPT_FILENAME", &pt);
            }
            // PATH_TRANSLATED = DOCUMENT_ROOT + PATH_INFO, or SCRIPT_FILENAME - SCRIPT_NAME + PATH_INFO
            let base = if let Some(root) = &env_document_root {
                let l = if root.ends_with(b"/") {
                    root.len() - 1
                } else {
                    root.len()
                };
                Some(root[..l].to_vec())
            } else {
                env_script_name
                    .as_ref()
                    .filter(|sn| find(&pt, sn))
                    .map(|sn| pt[..pt.len().saturating_sub(sn.len())].to_vec())
            };
            if let Some(mut translated) = base {
                if let Some(pi) = &env_path_info {
                    translated.extend_from_slice(pi);
                }
                if let Some(opt) = &orig_path_translated {
                    env.set(b"ORIG_PATH_TRANSLATED", opt);
                }
                env.set(b"PATH_TRANSLATED", &translated);
            }
            out.script_filename = Some(pt.clone());
            break;
        }
        if !found {
            if let Some(osf) = &orig_script_filename {
                env.set(b"ORIG_SCRIPT_FILENAME", osf);
            }
            env.unset(b"SCRIPT_FILENAME");
            out.script_filename = None;
        }
        if out.request_uri.is_none() {
            if orig_script_name.is_none() || orig_script_name != env_script_name {
                if let Some(osn) = &orig_script_name {
                    env.set(b"ORIG_SCRIPT_NAME", osn);
                }
                match &env_script_name {
                    Some(sn) => env.set(b"SCRIPT_NAME", sn),
                    None => env.unset(b"SCRIPT_NAME"),
                }
            }
            out.request_uri = env_script_name;
        }
    } else {
        // The file exists as named: keep ORIG_ copies of whatever changed.
        if orig_script_filename.as_ref() != Some(&spt) {
            if let Some(osf) = &orig_script_filename {
                env.set(b"ORIG_SCRIPT_FILENAME", osf);
            }
            env.set(b"SCRIPT_FILENAME", &spt);
        }
        if !apache_was_here && env_redirect_url.is_some() {
            if let Some(opi) = &orig_path_info {
                env.set(b"ORIG_PATH_INFO", opi);
                env.unset(b"PATH_INFO");
            }
            if let Some(opt) = &orig_path_translated {
                env.set(b"ORIG_PATH_TRANSLATED", opt);
                env.unset(b"PATH_TRANSLATED");
            }
        }
        if script_name_changed {
            if let Some(osn) = &orig_script_name {
                env.set(b"ORIG_SCRIPT_NAME", osn);
            }
            match &env_script_name {
                Some(sn) => env.set(b"SCRIPT_NAME", sn),
                None => env.unset(b"SCRIPT_NAME"),
            }
        }
        out.request_uri = env_script_name;
        out.script_filename = Some(spt);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> PathSettings {
        PathSettings {
            fix_pathinfo: true,
            script_path_encoded: true,
            ..Default::default()
        }
    }

    fn docroot() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("info.php"), "<?php").expect("write");
        dir
    }

    #[test]
    fn nginx_split_path_info_keeps_script_and_sets_path_translated() {
        let dir = docroot();
        let root = dir.path().to_str().expect("utf8").as_bytes().to_vec();
        let mut env = Env::new();
        let mut script = root.clone();
        script.extend_from_slice(b"/info.php");
        env.append(b"SCRIPT_FILENAME", &script);
        env.append(b"SCRIPT_NAME", b"/info.php");
        env.append(b"PATH_INFO", b"/test");
        env.append(b"DOCUMENT_ROOT", &root);
        let r = resolve(&mut env, &settings(), &exists_on_disk);
        assert_eq!(r.script_filename.as_deref(), Some(&script[..]));
        assert_eq!(r.request_uri.as_deref(), Some(&b"/info.php"[..]));
        assert_eq!(
            env.get(b"PATH_TRANSLATED"),
            None,
            "file exists: no PATH_TRANSLATED is made up"
        );
    }

    #[test]
    fn script_filename_with_path_info_is_split_at_the_real_file() {
        let dir = docroot();
        let root = dir.path().to_str().expect("utf8").as_bytes().to_vec();
        let mut env = Env::new();
        let mut full = root.clone();
        full.extend_from_slice(b"/info.php/foo/bar");
        env.append(b"SCRIPT_FILENAME", &full);
        env.append(b"SCRIPT_NAME", b"/info.php/foo/bar");
        env.append(b"PATH_INFO", b"/info.php/foo/bar");
        env.append(b"DOCUMENT_ROOT", &root);
        let r = resolve(&mut env, &settings(), &exists_on_disk);
        let mut script = root.clone();
        script.extend_from_slice(b"/info.php");
        assert_eq!(r.script_filename.as_deref(), Some(&script[..]));
        assert_eq!(env.get(b"PATH_INFO"), Some(&b"/foo/bar"[..]));
        assert_eq!(env.get(b"SCRIPT_NAME"), Some(&b"/info.php"[..]));
        assert_eq!(env.get(b"ORIG_SCRIPT_FILENAME"), Some(&full[..]));
        let mut translated = root.clone();
        translated.extend_from_slice(b"/foo/bar");
        assert_eq!(env.get(b"PATH_TRANSLATED"), Some(&translated[..]));
    }

    #[test]
    fn missing_script_resolves_to_nothing() {
        let dir = docroot();
        let mut env = Env::new();
        let missing = format!("{}/nope.php", dir.path().display());
        env.append(b"SCRIPT_FILENAME", missing.as_bytes());
        env.append(b"SCRIPT_NAME", b"/nope.php");
        let r = resolve(&mut env, &settings(), &exists_on_disk);
        assert_eq!(r.script_filename, None);
        assert_eq!(env.get(b"SCRIPT_FILENAME"), None);
        assert_eq!(env.get(b"ORIG_SCRIPT_FILENAME"), Some(missing.as_bytes()));
    }

    #[test]
    fn apache_proxy_prefix_is_stripped() {
        let dir = docroot();
        let mut env = Env::new();
        let f = format!(
            "proxy:fcgi://127.0.0.1:9000{}/info.php?x=1",
            dir.path().display()
        );
        env.append(b"SCRIPT_FILENAME", f.as_bytes());
        let r = resolve(&mut env, &settings(), &exists_on_disk);
        let want = format!("{}/info.php", dir.path().display());
        assert_eq!(r.script_filename.as_deref(), Some(want.as_bytes()));
    }

    #[test]
    fn raw_url_decode_leaves_plus_and_bad_escapes() {
        assert_eq!(raw_url_decode(b"a%20b+c%zz%4"), b"a b+c%zz%4".to_vec());
    }

    #[test]
    fn without_fix_pathinfo_path_info_is_the_request_uri() {
        let mut env = Env::new();
        env.append(b"SCRIPT_FILENAME", b"/x/y.php");
        env.append(b"SCRIPT_NAME", b"/y.php");
        env.append(b"PATH_INFO", b"/pi");
        let r = resolve(&mut env, &PathSettings::default(), &exists_on_disk);
        assert_eq!(r.request_uri.as_deref(), Some(&b"/pi"[..]));
        assert_eq!(r.script_filename.as_deref(), Some(&b"/x/y.php"[..]));
    }
}
