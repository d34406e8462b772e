//! CGI request semantics: turns the FastCGI params of one request into the variables
//! PHP sees, with php-fpm's path fix-up (`cgi.fix_pathinfo`: SCRIPT_FILENAME,
//! SCRIPT_NAME, PATH_INFO, PATH_TRANSLATED and their ORIG_ copies) and its
//! `security.limit_extensions` check. Knows the filesystem, not PHP.
#![forbid(unsafe_code)]

mod env;
mod pathinfo;

pub use env::Env;
pub use pathinfo::{exists_on_disk, resolve, PathSettings, Resolved};

/// Whether `path` ends with one of the allowed extensions (`security.limit_extensions`).
/// An empty list allows everything, as php-fpm does.
pub fn extension_allowed(path: &[u8], allowed: &[String]) -> bool {
    allowed.is_empty()
        || allowed
            .iter()
            .any(|ext| path.len() > ext.len() && path.ends_with(ext.as_bytes()))
}

/// The request's path as php-fpm's pages and access log name it: SCRIPT_NAME, else
/// REQUEST_URI without its query string.
pub fn request_path<'a>(script_name: Option<&'a [u8]>, request_uri: Option<&'a [u8]>) -> &'a [u8] {
    match script_name.filter(|s| !s.is_empty()) {
        Some(s) => s,
        None => request_uri
            .unwrap_or_default()
            .split(|&c| c == b'?')
            .next()
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_extensions_allow_php_and_refuse_others() {
        let allowed = vec![".php".to_string(), ".phar".to_string()];
        assert!(extension_allowed(b"/srv/index.php", &allowed));
        assert!(extension_allowed(b"/srv/app.phar", &allowed));
        assert!(!extension_allowed(b"/srv/secret.txt", &allowed));
        assert!(
            !extension_allowed(b".php", &allowed),
            "the extension alone is not a script"
        );
        assert!(extension_allowed(b"/srv/secret.txt", &[]));
    }

    #[test]
    fn the_request_path_prefers_the_script_name() {
        assert_eq!(request_path(Some(b"/a.php"), Some(b"/b?x=1")), b"/a.php");
        assert_eq!(request_path(Some(b""), Some(b"/b?x=1")), b"/b");
        assert_eq!(request_path(None, None), b"");
    }
}
