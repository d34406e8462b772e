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

/// Accepts one connection as a non-blocking, close-on-exec descriptor (the master's
/// status socket, served from its event loop).
///
/// # Errors
/// The errno of accept4 (EAGAIN when nothing waits).
pub fn accept_nonblocking(listener: RawFd) -> nix::Result<OwnedFd> {
    let fd = accept4(listener, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK)?;
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

/// SIGTERM in a worker: the master ends the request in flight (timeout or a stop
/// that cannot wait). Answer the web server if nothing of the response left yet, then
/// die of the signal so the master logs "exited on signal 15".
extern "C" fn on_terminate(_: nix::libc::c_int) {
    use crate::worker::inflight;
    if let Some((fd, n)) = inflight::pending_unread() {
        // read(2) is async-signal-safe, and the bytes are already queued: no blocking
        let mut sink = [0u8; inflight::UNREAD_MAX];
        let _ = nix::unistd::read(fd, &mut sink[..n]);
    }
    let mut buf = [0u8; inflight::EMERGENCY_LEN];
    if let Some((fd, len)) = inflight::pending_answer(crate::scoreboard::now_us(), &mut buf) {
        // SAFETY: write(2) is async-signal-safe; `buf[..len]` is initialised stack
        // memory; a failed or short write only loses this courtesy answer.
        let _ = unsafe { nix::libc::write(fd, buf.as_ptr().cast(), len) };
    }
    // SAFETY: signal(2), sigprocmask(2) and raise(3) are async-signal-safe; resetting
    // to the default disposition and re-raising terminates the process by SIGTERM.
    unsafe {
        nix::libc::signal(nix::libc::SIGTERM, nix::libc::SIG_DFL);
        let mut set: nix::libc::sigset_t = std::mem::zeroed();
        nix::libc::sigemptyset(&mut set);
        nix::libc::sigaddset(&mut set, nix::libc::SIGTERM);
        nix::libc::sigprocmask(nix::libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        nix::libc::raise(nix::libc::SIGTERM);
    }
}

/// Installs the worker's signal dispositions: SIGQUIT asks for a graceful stop (the
/// handler only stores a flag; without SA_RESTART a blocked accept() returns EINTR),
/// SIGTERM answers the request in flight with a 5xx if it can and exits, SIGINT
/// keeps its default (exit now), SIGPIPE is ignored.
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
    let term = SigAction::new(
        SigHandler::Handler(on_terminate),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: both handlers are async-signal-safe (atomics, write, raise); the others
    // are the default and ignore dispositions.
    unsafe {
        sigaction(Signal::SIGQUIT, &stop)?;
        sigaction(Signal::SIGTERM, &term)?;
        for s in [
            Signal::SIGINT,
            Signal::SIGCHLD,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
            Signal::SIGHUP,
        ] {
            sigaction(s, &dfl)?;
        }
        sigaction(Signal::SIGPIPE, &ign)?;
        // Rust's runtime catches SIGSEGV/SIGBUS to report stack overflows; a worker
        // that faults must die of the signal, so the master sees the crash
        sigaction(Signal::SIGSEGV, &dfl)?;
        sigaction(Signal::SIGBUS, &dfl)?;
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

/// Gives the heap's free pages back to the kernel (glibc's `malloc_trim`): after a large
/// request the worker's freed buffers would otherwise stay resident for its whole life.
pub fn release_free_heap() {
    // SAFETY: malloc_trim only walks the allocator's own free lists; it touches no
    // memory owned by live allocations and is safe to call at any time in a
    // single-threaded worker.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Sets this process's nice value (`process.priority`).
///
/// # Errors
/// The errno of setpriority (EACCES when lowering it without privilege).
pub fn set_priority(nice: i32) -> nix::Result<()> {
    // SAFETY: setpriority only reads its integer arguments.
    let r = unsafe { nix::libc::setpriority(nix::libc::PRIO_PROCESS, 0, nice) };
    if r == 0 {
        Ok(())
    } else {
        Err(nix::errno::Errno::last())
    }
}

/// Executes `exe` with `argv` in place of this process (same pid), for a reload.
/// Unlike `std::process::Command::exec` this keeps the signal mask, so signals
/// stay blocked (pending, not fatal) until the next image reads its signalfd.
/// Only returns on failure.
pub fn exec(exe: &std::path::Path, argv: &[std::ffi::OsString]) -> std::io::Error {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = CString::new(exe.as_os_str().as_bytes()) else {
        return std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in executable path");
    };
    let args: Option<Vec<CString>> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()).ok())
        .collect();
    let Some(args) = args else {
        return std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in an argument");
    };
    match nix::unistd::execv(&path, &args) {
        Ok(never) => match never {},
        Err(e) => e.into(),
    }
}

/// Lets `fd` survive exec (the reload hands it to the next master image).
///
/// # Errors
/// The errno of fcntl.
pub fn keep_across_exec(fd: std::os::fd::BorrowedFd<'_>) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    nix::fcntl::fcntl(
        fd.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .map(drop)
}

/// Takes ownership of a descriptor inherited across exec, named by number in the
/// handoff, after checking it is open, and makes it close-on-exec again.
///
/// # Errors
/// EBADF when no such descriptor is open.
pub fn adopt_fd(fd: RawFd) -> nix::Result<OwnedFd> {
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    // SAFETY: the previous image of this process passed this descriptor number for
    // exactly this use, fcntl just proved it open, and nothing else here owns it;
    // each number appears once in the handoff and is adopted once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
