//! Binding a pool's `listen` address when systemd did not pass a socket: a unix
//! socket (with owner, group and mode) or a TCP `[addr:]port`, and its backlog.
#![forbid(unsafe_code)]

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{
    bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
    SockaddrIn, SockaddrIn6, UnixAddr,
};
use nix::unistd::{chown, Gid, Group, Uid, User};

use crate::config::{ListenAddress, PoolConfig};

/// A bound, listening socket and the path to remove when the pool stops.
#[derive(Debug)]
pub struct Listener {
    /// The listening descriptor workers accept on.
    pub fd: OwnedFd,
    /// The unix socket file this process created.
    pub path: Option<PathBuf>,
    /// Human-readable address for log lines.
    pub display: String,
}

fn backlog(n: i32) -> Backlog {
    // -1 asks for the kernel's maximum (somaxconn), as php-fpm does on Linux.
    if n < 0 {
        Backlog::MAXCONN
    } else {
        Backlog::new(n).unwrap_or(Backlog::MAXCONN)
    }
}

/// Binds the pool's `listen` address.
///
/// # Errors
/// With the address in the message when the socket cannot be created, bound or chowned.
pub fn bind_pool(pool: &PoolConfig, default_owner: Option<(Uid, Gid)>) -> Result<Listener> {
    match &pool.listen {
        ListenAddress::Unix(path) => bind_unix(pool, path, default_owner),
        ListenAddress::Tcp { host, port } => bind_tcp(pool, host.as_deref(), *port),
    }
}

fn bind_unix(
    pool: &PoolConfig,
    path: &Path,
    default_owner: Option<(Uid, Gid)>,
) -> Result<Listener> {
    let display = path.display().to_string();
    if path.exists() {
        // A live socket means another server owns it; a stale one is left by a crash.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("[pool {}] cannot bind to {display}: another FPM instance seems to already listen on it", pool.name);
        }
        std::fs::remove_file(path)
            .with_context(|| format!("[pool {}] removing stale socket {display}", pool.name))?;
    }
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .with_context(|| format!("[pool {}] socket() for {display}", pool.name))?;
    let addr = UnixAddr::new(path)
        .with_context(|| format!("[pool {}] bad socket path {display}", pool.name))?;
    bind(fd.as_raw_fd(), &addr)
        .with_context(|| format!("[pool {}] cannot bind to {display}", pool.name))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(pool.listen_mode))
        .with_context(|| {
            format!(
                "[pool {}] chmod {:o} {display}",
                pool.name, pool.listen_mode
            )
        })?;
    let uid = match &pool.listen_owner {
        Some(name) => Some(
            lookup_user(name)
                .with_context(|| format!("[pool {}] listen.owner", pool.name))?
                .0,
        ),
        None => default_owner.map(|(u, _)| u),
    };
    let gid = match &pool.listen_group {
        Some(name) => {
            Some(lookup_group(name).with_context(|| format!("[pool {}] listen.group", pool.name))?)
        }
        None => default_owner.map(|(_, g)| g),
    };
    if (uid.is_some() || gid.is_some()) && Uid::effective().is_root() {
        chown(path, uid, gid).with_context(|| format!("[pool {}] chown {display}", pool.name))?;
    }
    listen(&fd, backlog(pool.listen_backlog))
        .with_context(|| format!("[pool {}] listen() on {display}", pool.name))?;
    Ok(Listener {
        fd,
        path: Some(path.to_path_buf()),
        display,
    })
}

fn bind_tcp(pool: &PoolConfig, host: Option<&str>, port: u16) -> Result<Listener> {
    let host = match host {
        None | Some("*") => "0.0.0.0",
        Some(h) => h.trim_start_matches('[').trim_end_matches(']'),
    };
    let ip: std::net::IpAddr = match host.parse() {
        Ok(ip) => ip,
        Err(_) => {
            use std::net::ToSocketAddrs;
            (host, port)
                .to_socket_addrs()
                .with_context(|| {
                    format!(
                        "[pool {}] cannot resolve listen address '{host}'",
                        pool.name
                    )
                })?
                .next()
                .map(|a| a.ip())
                .with_context(|| {
                    format!(
                        "[pool {}] listen address '{host}' has no address",
                        pool.name
                    )
                })?
        }
    };
    let sa = std::net::SocketAddr::new(ip, port);
    let display = sa.to_string();
    let family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
        .with_context(|| format!("[pool {}] socket() for {display}", pool.name))?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)
        .with_context(|| format!("[pool {}] SO_REUSEADDR", pool.name))?;
    let r = match sa {
        std::net::SocketAddr::V4(v4) => bind(fd.as_raw_fd(), &SockaddrIn::from(v4)),
        std::net::SocketAddr::V6(v6) => bind(fd.as_raw_fd(), &SockaddrIn6::from(v6)),
    };
    r.with_context(|| format!("[pool {}] cannot bind to {display}", pool.name))?;
    listen(&fd, backlog(pool.listen_backlog))
        .with_context(|| format!("[pool {}] listen() on {display}", pool.name))?;
    Ok(Listener {
        fd,
        path: None,
        display,
    })
}

/// A stable name for a listen address, to find a pool's socket again after a reload.
pub fn address_key(address: &ListenAddress) -> String {
    match address {
        ListenAddress::Unix(p) => format!("unix:{}", p.display()),
        ListenAddress::Tcp { host, port } => {
            format!("tcp:{}:{port}", host.as_deref().unwrap_or("*"))
        }
    }
}

/// Wraps a socket inherited from the previous image of this master (a reload): the
/// same open socket keeps its queue, so no connection is refused meanwhile. The
/// backlog is set again from the new configuration.
pub fn inherited(pool: &PoolConfig, fd: OwnedFd, owned: bool) -> Listener {
    let (path, display) = match &pool.listen {
        // a socket systemd passed stays systemd's: its file is never removed here
        ListenAddress::Unix(p) => (Some(p.clone()).filter(|_| owned), p.display().to_string()),
        ListenAddress::Tcp { host, port } => {
            (None, format!("{}:{port}", host.as_deref().unwrap_or("*")))
        }
    };
    let _ = listen(&fd, backlog(pool.listen_backlog));
    Listener { fd, path, display }
}

/// Wraps an inherited status socket; `config` is the pool with `listen` set to its
/// `pm.status_listen`, when the master bound it (and so removes its file at exit).
pub fn inherited_as(fd: OwnedFd, owned: bool, config: Option<&PoolConfig>) -> Listener {
    match config {
        Some(c) => inherited(c, fd, owned),
        None => Listener {
            fd,
            path: None,
            display: "status socket".into(),
        },
    }
}

/// Resolves a user name (or numeric id) to its uid and primary gid.
///
/// # Errors
/// When the user does not exist.
pub fn lookup_user(name: &str) -> Result<(Uid, Gid)> {
    if let Ok(id) = name.parse::<u32>() {
        let uid = Uid::from_raw(id);
        let gid = User::from_uid(uid)
            .ok()
            .flatten()
            .map_or(Gid::from_raw(id), |u| u.gid);
        return Ok((uid, gid));
    }
    match User::from_name(name) {
        Ok(Some(u)) => Ok((u.uid, u.gid)),
        Ok(None) => bail!("cannot get uid for user '{name}'"),
        Err(e) => bail!("cannot get uid for user '{name}': {e}"),
    }
}

/// Resolves a group name (or numeric id).
///
/// # Errors
/// When the group does not exist.
pub fn lookup_group(name: &str) -> Result<Gid> {
    if let Ok(id) = name.parse::<u32>() {
        return Ok(Gid::from_raw(id));
    }
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => bail!("cannot get gid for group '{name}'"),
        Err(e) => bail!("cannot get gid for group '{name}': {e}"),
    }
}
