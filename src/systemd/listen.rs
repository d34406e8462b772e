//! Socket activation: take the listening sockets systemd passes (LISTEN_FDS,
//! LISTEN_PID, LISTEN_FDNAMES), check that each is a listening stream socket, and
//! hand each pool its own instead of binding the pool file's `listen`.
//!
//! Matching a passed socket to a pool, in order: its name (FileDescriptorName=,
//! which defaults to the socket unit's name, so `php-fpm@blog.socket` names pool
//! `blog`), then its address (the pool's `listen`), then, when the master runs a
//! single pool, that pool. A socket named `status` is kept for the status and ping
//! pages. `listenfd` does the descriptor adoption and the family/type check (no
//! `unsafe` here); sd-notify could list the descriptors too but only as raw numbers.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{getsockopt, sockopt};

use crate::config::{ListenAddress, PoolConfig};
use crate::logging::{self, Level};
use crate::pm::listen::Listener;

/// The FileDescriptorName= that marks a socket for the status and ping pages only.
pub const STATUS_SOCKET_NAME: &str = "status";

/// Where a passed socket listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalAddr {
    /// A unix stream socket; `None` for an abstract or unnamed one.
    Unix(Option<PathBuf>),
    /// A TCP socket.
    Tcp(SocketAddr),
}

impl std::fmt::Display for LocalAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LocalAddr::Unix(Some(p)) => write!(f, "{}", p.display()),
            LocalAddr::Unix(None) => f.write_str("(unnamed unix socket)"),
            LocalAddr::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// One socket systemd passed.
#[derive(Debug)]
pub struct Passed {
    /// The listening descriptor (blocking, close-on-exec).
    pub fd: OwnedFd,
    /// Its LISTEN_FDNAMES entry (`unknown` when systemd gave none).
    pub name: String,
    /// Its local address.
    pub local: LocalAddr,
}

/// The sockets of one activation, sorted out per pool.
#[derive(Debug, Default)]
pub struct Activation {
    /// Sockets to serve, per pool name.
    serve: Vec<(String, Vec<Passed>)>,
    /// Sockets named `status`, per pool name.
    status: Vec<(String, Passed)>,
    /// Whether systemd passed any socket at all.
    active: bool,
    /// Second and further sockets of a pool, once its first was taken.
    extra: Vec<(String, Listener)>,
}

impl Activation {
    /// Takes the sockets systemd passed to this process (none when LISTEN_PID names
    /// another process or LISTEN_FDS is unset) and assigns them to `pools`. The
    /// LISTEN_* variables are removed, so workers and PHP scripts do not see them.
    ///
    /// # Errors
    /// When a passed descriptor is not a listening unix or TCP stream socket, or a
    /// socket matches no pool.
    pub fn from_env(pools: &[PoolConfig]) -> Result<Self> {
        let names = std::env::var("LISTEN_FDNAMES").ok();
        std::env::remove_var("LISTEN_FDNAMES");
        let mut fds = listenfd::ListenFd::from_env();
        let count = fds.len();
        if count == 0 {
            return Ok(Activation::default());
        }
        let names = fd_names(names.as_deref(), count);
        let mut passed = Vec::with_capacity(count);
        for (i, name) in names.into_iter().enumerate() {
            passed.push(take_one(&mut fds, i, name)?);
        }
        let targets: Vec<(&str, &ListenAddress)> =
            pools.iter().map(|p| (p.name.as_str(), &p.listen)).collect();
        let plan = assign(&targets, &passed)?;
        let mut activation = Activation {
            active: true,
            ..Activation::default()
        };
        for (sock, target) in passed.into_iter().zip(plan) {
            let pool = targets[target.pool].0.to_string();
            if target.status {
                activation.status.push((pool, sock));
            } else if let Some(entry) = activation.serve.iter_mut().find(|(p, _)| *p == pool) {
                entry.1.push(sock);
            } else {
                activation.serve.push((pool, vec![sock]));
            }
        }
        Ok(activation)
    }

    /// Whether systemd passed sockets (the process is socket-activated).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The listener for `pool`: the first socket systemd passed for it, `None` when
    /// it must bind its own `listen`. Logs a NOTICE when the pool file's `listen`
    /// names another address, and a WARNING for sockets this version cannot serve yet
    /// (a second socket per pool, the `status` socket).
    pub fn take(&mut self, pool: &PoolConfig) -> Option<Listener> {
        let i = self.serve.iter().position(|(p, _)| *p == pool.name);
        let Some(i) = i else {
            if self.active {
                logging::log(
                    Level::Notice,
                    &format!(
                        "[pool {}] systemd passed no socket for this pool: binding {}",
                        pool.name,
                        listen_display(&pool.listen)
                    ),
                );
            }
            return None;
        };
        let (_, mut socks) = self.serve.swap_remove(i);
        let first = socks.remove(0);
        for extra in socks {
            logging::log(
                Level::Notice,
                &format!(
                    "[pool {}] also serving {} passed by systemd ({})",
                    pool.name, extra.local, extra.name
                ),
            );
            self.extra
                .push((pool.name.clone(), systemd_listener(extra)));
        }
        if !same_address(&pool.listen, &first.local) {
            logging::log(
                Level::Notice,
                &format!(
                    "[pool {}] listen = {} in the pool file is not used: serving on {} passed by systemd ({})",
                    pool.name,
                    listen_display(&pool.listen),
                    first.local,
                    first.name
                ),
            );
        }
        Some(systemd_listener(first))
    }

    /// The pool's other sockets (after [`Activation::take`]): its workers accept on
    /// all of them.
    pub fn take_extra(&mut self, pool: &str) -> Vec<Listener> {
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.extra)
            .into_iter()
            .partition(|(p, _)| p == pool);
        self.extra = rest;
        mine.into_iter().map(|(_, l)| l).collect()
    }

    /// The pool's socket named `status`, served by the master.
    pub fn take_status(&mut self, pool: &str) -> Option<Listener> {
        let i = self.status.iter().position(|(p, _)| p == pool)?;
        let (_, s) = self.status.swap_remove(i);
        logging::log(
            Level::Notice,
            &format!(
                "[pool {pool}] status and ping pages on {} passed by systemd ({})",
                s.local, s.name
            ),
        );
        Some(systemd_listener(s))
    }
}

fn systemd_listener(s: Passed) -> Listener {
    Listener {
        fd: s.fd,
        // systemd owns the socket file (RemoveOnStop=): the master never unlinks it,
        // so connections keep queueing across restarts.
        path: None,
        display: format!("{} (from systemd)", s.local),
    }
}

/// LISTEN_FDNAMES split on ':' when it has one name per descriptor, else `unknown`
/// for each (what sd_listen_fds_with_names reports).
fn fd_names(names: Option<&str>, count: usize) -> Vec<String> {
    match names {
        Some(n) if n.split(':').count() == count => n.split(':').map(str::to_string).collect(),
        _ => vec!["unknown".to_string(); count],
    }
}

fn take_one(fds: &mut listenfd::ListenFd, i: usize, name: String) -> Result<Passed> {
    let shown = format!("socket #{} '{name}' passed by systemd", i + 3);
    let (fd, local): (OwnedFd, LocalAddr) = match fds.take_unix_listener(i) {
        Ok(Some(l)) => {
            l.set_nonblocking(false)
                .with_context(|| format!("{shown}: clearing O_NONBLOCK"))?;
            let path = l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Path::to_path_buf));
            (l.into(), LocalAddr::Unix(path))
        }
        Ok(None) => bail!("{shown} was already taken"),
        Err(_) => match fds.take_tcp_listener(i) {
            Ok(Some(l)) => {
                l.set_nonblocking(false)
                    .with_context(|| format!("{shown}: clearing O_NONBLOCK"))?;
                let addr = l
                    .local_addr()
                    .with_context(|| format!("{shown}: getsockname"))?;
                (l.into(), LocalAddr::Tcp(addr))
            }
            Ok(None) => bail!("{shown} was already taken"),
            Err(e) => bail!(
                "{shown} is not a unix or TCP stream socket ({e}): the socket unit needs ListenStream="
            ),
        },
    };
    // With Accept=yes systemd passes one connected socket per connection instead.
    let listening = getsockopt(&fd, sockopt::AcceptConn)
        .with_context(|| format!("{shown}: getsockopt(SO_ACCEPTCONN)"))?;
    if !listening {
        bail!("{shown} is not listening: the socket unit must use Accept=no");
    }
    Ok(Passed { fd, name, local })
}

/// Where one passed socket goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    /// Index into the pool list.
    pool: usize,
    /// Serves only the status and ping pages.
    status: bool,
}

/// Assigns each passed socket to a pool (see the module comment for the rules).
fn assign(pools: &[(&str, &ListenAddress)], passed: &[Passed]) -> Result<Vec<Target>> {
    let mut plan = Vec::with_capacity(passed.len());
    for s in passed {
        let status = s.name == STATUS_SOCKET_NAME;
        let by_name = pools
            .iter()
            .position(|(name, _)| s.name == *name || s.name == format!("php-fpm@{name}.socket"));
        let by_addr = || {
            pools
                .iter()
                .position(|(_, listen)| same_address(listen, &s.local))
        };
        let only = || (pools.len() == 1).then_some(0);
        match by_name.or_else(by_addr).or_else(only) {
            Some(pool) => plan.push(Target { pool, status }),
            None => bail!(
                "socket '{}' ({}) passed by systemd matches no pool: name it after its pool with FileDescriptorName=",
                s.name,
                s.local
            ),
        }
    }
    Ok(plan)
}

/// Whether the pool file's `listen` is the address systemd's socket has.
fn same_address(listen: &ListenAddress, local: &LocalAddr) -> bool {
    match (listen, local) {
        (ListenAddress::Unix(a), LocalAddr::Unix(Some(b))) => a == b,
        (ListenAddress::Tcp { host, port }, LocalAddr::Tcp(addr)) => {
            if *port != addr.port() {
                return false;
            }
            match host.as_deref() {
                None | Some("*") => addr.ip().is_unspecified(),
                Some(h) => h
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .map_or(h == "localhost" && addr.ip().is_loopback(), |ip| {
                        ip == addr.ip()
                    }),
            }
        }
        _ => false,
    }
}

fn listen_display(listen: &ListenAddress) -> String {
    match listen {
        ListenAddress::Unix(p) => p.display().to_string(),
        ListenAddress::Tcp { host: None, port } => port.to_string(),
        ListenAddress::Tcp {
            host: Some(h),
            port,
        } => format!("{h}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn passed(name: &str, local: LocalAddr) -> Passed {
        // any descriptor will do: assignment only looks at names and addresses
        let dir = tempfile::tempdir().expect("tempdir");
        let l = UnixListener::bind(dir.path().join("s")).expect("bind");
        Passed {
            fd: l.into(),
            name: name.to_string(),
            local,
        }
    }

    fn unix(p: &str) -> ListenAddress {
        ListenAddress::Unix(PathBuf::from(p))
    }

    #[test]
    fn a_socket_named_after_the_socket_unit_goes_to_its_pool() {
        let (a, b) = (unix("/run/a.sock"), unix("/run/b.sock"));
        let pools = [("blog", &a), ("shop", &b)];
        let s = [passed("php-fpm@shop.socket", LocalAddr::Unix(None))];
        let plan = assign(&pools, &s).expect("assigned");
        assert_eq!(
            plan,
            vec![Target {
                pool: 1,
                status: false
            }]
        );
    }

    #[test]
    fn a_socket_is_matched_by_address_when_its_name_says_nothing() {
        let a = unix("/run/a.sock");
        let b = ListenAddress::Tcp {
            host: Some("127.0.0.1".into()),
            port: 9001,
        };
        let pools = [("blog", &a), ("shop", &b)];
        let s = [passed(
            "unknown",
            LocalAddr::Tcp("127.0.0.1:9001".parse().expect("addr")),
        )];
        assert_eq!(assign(&pools, &s).expect("assigned")[0].pool, 1);
    }

    #[test]
    fn a_single_pool_takes_every_socket_and_the_status_one_is_marked() {
        let a = unix("/run/php/blog.sock");
        let pools = [("blog", &a)];
        let s = [
            passed(
                "php-fpm@blog.socket",
                LocalAddr::Unix(Some("/run/php-fpm/blog.sock".into())),
            ),
            passed(
                "status",
                LocalAddr::Tcp("127.0.0.1:9100".parse().expect("addr")),
            ),
        ];
        let plan = assign(&pools, &s).expect("assigned");
        assert_eq!(
            plan,
            vec![
                Target {
                    pool: 0,
                    status: false
                },
                Target {
                    pool: 0,
                    status: true
                }
            ]
        );
    }

    #[test]
    fn a_socket_that_matches_no_pool_is_an_error_that_says_how_to_fix_it() {
        let (a, b) = (unix("/run/a.sock"), unix("/run/b.sock"));
        let pools = [("blog", &a), ("shop", &b)];
        let s = [passed("web", LocalAddr::Unix(Some("/run/c.sock".into())))];
        let e = assign(&pools, &s).expect_err("no match");
        assert!(e.to_string().contains("FileDescriptorName="), "{e}");
    }

    #[test]
    fn tcp_listen_matches_the_wildcard_and_loopback_forms() {
        let any = ListenAddress::Tcp {
            host: None,
            port: 9000,
        };
        let wildcard: SocketAddr = "0.0.0.0:9000".parse().expect("addr");
        assert!(same_address(&any, &LocalAddr::Tcp(wildcard)));
        let local = ListenAddress::Tcp {
            host: Some("localhost".into()),
            port: 9000,
        };
        let lo: SocketAddr = "127.0.0.1:9000".parse().expect("addr");
        assert!(same_address(&local, &LocalAddr::Tcp(lo)));
        assert!(!same_address(&any, &LocalAddr::Tcp(lo)));
    }

    #[test]
    fn fd_names_fall_back_to_unknown_when_the_count_differs() {
        assert_eq!(fd_names(Some("a:status"), 2), vec!["a", "status"]);
        assert_eq!(fd_names(Some("a"), 2), vec!["unknown", "unknown"]);
        assert_eq!(fd_names(None, 1), vec!["unknown"]);
    }
}
