//! The command line, flag for flag as php-fpm's, so php-fpm-rs is a drop-in.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser, ValueHint};

/// php-fpm's exit codes (sysexits).
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// Bad command line.
    pub const USAGE: i32 = 64;
    /// Internal failure (PHP startup, fork).
    pub const SOFTWARE: i32 = 70;
    /// Bad configuration.
    pub const CONFIG: i32 = 78;

    /// Every exit status with its meaning, for the man page.
    pub const ALL: [(i32, &str); 4] = [
        (OK, "success, or the configuration test passed"),
        (USAGE, "the command line is wrong (EX_USAGE)"),
        (
            SOFTWARE,
            "PHP could not be started, or an internal failure such as fork (EX_SOFTWARE)",
        ),
        (
            CONFIG,
            "the configuration is invalid; every bad line is printed as file:line: reason (EX_CONFIG)",
        ),
    ];
}

/// Default main configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/php-fpm-rs/php-fpm.conf";

/// PHP-FPM compatible FastCGI process manager for systemd.
#[derive(Debug, Clone, Parser)]
#[command(name = "php-fpm-rs", disable_version_flag = true, about, long_about = None)]
pub struct Args {
    /// Look for php.ini file in this directory (or use this file).
    #[arg(short = 'c', long = "php-ini", value_name = "path|file", value_hint = ValueHint::AnyPath)]
    pub php_ini: Option<PathBuf>,
    /// No php.ini file will be used.
    #[arg(short = 'n', long = "no-php-ini")]
    pub no_php_ini: bool,
    /// Define INI entry foo with value 'bar'.
    #[arg(short = 'd', long = "define", value_name = "foo[=bar]")]
    pub define: Vec<String>,
    /// Generate extended information for debugger/profiler (accepted, no effect).
    #[arg(short = 'e', long = "profile-info")]
    pub profile_info: bool,
    /// PHP information.
    #[arg(short = 'i', long = "info")]
    pub info: bool,
    /// Show compiled in modules.
    #[arg(short = 'm', long = "modules")]
    pub modules: bool,
    /// Version number.
    #[arg(short = 'v', long = "version")]
    pub version: bool,
    /// Specify alternative prefix path (relative paths in the config start there).
    #[arg(short = 'p', long = "prefix", value_name = "dir", value_hint = ValueHint::DirPath)]
    pub prefix: Option<PathBuf>,
    /// Specify the PID file location.
    #[arg(short = 'g', long = "pid", value_name = "file", value_hint = ValueHint::FilePath)]
    pub pid: Option<PathBuf>,
    /// Specify alternative path to the FastCGI process manager config file.
    #[arg(short = 'y', long = "fpm-config", value_name = "file", value_hint = ValueHint::FilePath)]
    pub fpm_config: Option<PathBuf>,
    /// Test FPM configuration and exit (twice: also print it).
    #[arg(short = 't', long = "test", action = ArgAction::Count)]
    pub test: u8,
    /// Force to run in background, and ignore daemonize option from config file.
    #[arg(short = 'D', long = "daemonize", conflicts_with = "nodaemonize")]
    pub daemonize: bool,
    /// Force to stay in foreground, and ignore daemonize option from config file.
    #[arg(short = 'F', long = "nodaemonize")]
    pub nodaemonize: bool,
    /// Force output to stderr in nodaemonize even if stderr is not a TTY.
    #[arg(short = 'O', long = "force-stderr")]
    pub force_stderr: bool,
    /// Read the pools from this file, after the [global] of the main file (-y), which
    /// then must define no pool (php-fpm-rs only; what php-fpm@NAME.service passes).
    #[arg(long = "pool-config", value_name = "file")]
    pub pool_config: Option<PathBuf>,
    /// Allow pool to run as root (disabled by default).
    #[arg(short = 'R', long = "allow-to-run-as-root")]
    pub allow_root: bool,
}

/// The clap command behind [`Args`], for the man page and shell completion generators.
pub fn command() -> clap::Command {
    Args::command()
}

impl Args {
    /// `-d` entries split into name and value (`-d foo` means `foo=1`, as in PHP).
    pub fn defines(&self) -> Vec<(String, String)> {
        self.define
            .iter()
            .map(|d| match d.split_once('=') {
                Some((k, v)) => (k.trim().to_string(), v.to_string()),
                None => (d.trim().to_string(), "1".to_string()),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_fpm_flags_parse() {
        let a = Args::try_parse_from([
            "php-fpm-rs",
            "-F",
            "-R",
            "-y",
            "/x.conf",
            "-d",
            "a=b",
            "-d",
            "c",
            "-tt",
            "-n",
        ])
        .expect("parses");
        assert!(a.nodaemonize && a.allow_root && a.no_php_ini);
        assert_eq!(a.test, 2);
        assert_eq!(
            a.defines(),
            vec![("a".into(), "b".into()), ("c".into(), "1".into())]
        );
        assert_eq!(a.fpm_config, Some(PathBuf::from("/x.conf")));
    }

    #[test]
    fn unknown_flag_is_a_usage_error() {
        assert!(Args::try_parse_from(["php-fpm-rs", "--frobnicate"]).is_err());
    }
}
