//! The few system calls that need `unsafe` around them (descriptor ownership after
//! accept and fork), each wrapped in a safe function.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{accept4, SockFlag};

/// Accepts one connection on `listener` as an owned, close-on-exec descriptor.
///
/// # Errors
/// The errno of accept4 (EINTR when a signal arrived).
pub fn accept(listener: RawFd) -> nix::Result<OwnedFd> {
    let fd = accept4(listener, SockFlag::SOCK_CLOEXEC)?;
    // SAFETY: accept4 just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Which side of a fork this process is on.
pub enum Forked {
    /// In the parent, with the child's pid.
    Parent(nix::unistd::Pid),
    /// In the new child.
    Child,
}

/// Forks the process.
///
/// # Errors
/// The errno of fork (EAGAIN at the process limit).
pub fn fork() -> nix::Result<Forked> {
    // SAFETY: the master is single-threaded (no runtime, no helper threads), so the
    // child's copy of the address space holds no lock taken by another thread.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

extern "C" fn on_stop_signal(_: nix::libc::c_int) {
    crate::worker::STOP.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Installs the worker's signal dispositions: SIGQUIT asks for a graceful stop (the
/// handler only stores a flag; without SA_RESTART a blocked accept() returns EINTR),
/// SIGTERM/SIGINT keep their default (exit now), SIGPIPE is ignored.
///
/// # Errors
/// When sigaction fails.
pub fn worker_signals() -> nix::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let stop = SigAction::new(
        SigHandler::Handler(on_stop_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    let ign = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: the handler is async-signal-safe (a relaxed atomic store); the others
    // are the default and ignore dispositions.
    unsafe {
        sigaction(Signal::SIGQUIT, &stop)?;
        for s in [
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGCHLD,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
            Signal::SIGHUP,
        ] {
            sigaction(s, &dfl)?;
        }
        sigaction(Signal::SIGPIPE, &ign)?;
    }
    Ok(())
}

/// Ignores SIGPIPE in the master (a closed pipe shows up as EPIPE instead).
///
/// # Errors
/// When sigaction fails.
pub fn ignore_sigpipe() -> nix::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let ign = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: setting the ignore disposition installs no code.
    unsafe { sigaction(Signal::SIGPIPE, &ign) }.map(drop)
}

/// Replaces this process's environment (env[] and clear_env of a pool), in a freshly
/// forked, single-threaded worker.
pub fn replace_environment(clear: bool, vars: &[(String, String)]) {
    if clear {
        let keys: Vec<_> = std::env::vars_os().map(|(k, _)| k).collect();
        for k in keys {
            std::env::remove_var(k);
        }
    }
    for (k, v) in vars {
        if !k.is_empty() && !k.contains('=') && !k.contains('\0') && !v.contains('\0') {
            std::env::set_var(k, v);
        }
    }
}

/// Detaches from the terminal: fork (the parent exits 0), setsid, stdio to /dev/null.
///
/// # Errors
/// When fork, setsid or opening /dev/null fails.
pub fn daemonize() -> nix::Result<()> {
    match fork()? {
        Forked::Parent(_) => std::process::exit(0),
        Forked::Child => {}
    }
    nix::unistd::setsid()?;
    let null = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDWR,
        nix::sys::stat::Mode::empty(),
    )?;
    for fd in 0..3 {
        nix::unistd::dup2(null, fd)?;
    }
    if null > 2 {
        nix::unistd::close(null)?;
    }
    Ok(())
}
