//! The scoreboard: one shared memory mapping per pool generation, a slot per worker.
//! Each worker writes only its own slot; the master and the status code read them.
//!
//! No locks: every field is an atomic, so a reader never waits on a writer and a
//! worker that dies half-way through an update leaves nothing held. The request
//! details (method, URI, query, script, start time) change together under a sequence
//! counter, odd while the worker writes them; a reader retries a bounded number of
//! times and reports a torn read instead of spinning on a dead writer.
//!
//! The mapping is a memfd rather than `MAP_ANONYMOUS` so that a reload, which
//! re-executes the master, can hand the previous generation's scoreboard to the new
//! image and keep watching the workers that are still finishing their requests.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};

const MAGIC: u64 = 0x7068_7066_706d_7273; // "phpfpmrs"
const LAYOUT_VERSION: u64 = 2;

/// Bytes kept of each request field (longer values are cut, as php-fpm does).
pub const METHOD_LEN: usize = 16;
/// Bytes kept of the request URI.
pub const URI_LEN: usize = 256;
/// Bytes kept of the query string.
pub const QUERY_LEN: usize = 256;
/// Bytes kept of the script path.
pub const SCRIPT_LEN: usize = 256;

/// What a worker is doing, with php-fpm's status page names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// The slot is not in use.
    Free = 0,
    /// Forked, not yet accepting.
    Starting = 1,
    /// Waiting in accept().
    Idle = 2,
    /// Reading the FastCGI request.
    ReadingHeaders = 3,
    /// Resolving the script from the parameters.
    GettingRequestInfo = 4,
    /// PHP is running the script.
    Running = 5,
    /// Sending the end of the response.
    Finishing = 6,
    /// Leaving (max_requests reached or told to stop).
    Ending = 7,
}

impl WorkerState {
    fn from_u32(v: u32) -> WorkerState {
        match v {
            1 => WorkerState::Starting,
            2 => WorkerState::Idle,
            3 => WorkerState::ReadingHeaders,
            4 => WorkerState::GettingRequestInfo,
            5 => WorkerState::Running,
            6 => WorkerState::Finishing,
            7 => WorkerState::Ending,
            _ => WorkerState::Free,
        }
    }

    /// The name php-fpm's status page uses.
    pub fn name(self) -> &'static str {
        match self {
            WorkerState::Free => "Free",
            WorkerState::Starting => "Starting",
            WorkerState::Idle => "Idle",
            WorkerState::ReadingHeaders => "Reading headers",
            WorkerState::GettingRequestInfo => "Getting request informations",
            WorkerState::Running => "Running",
            WorkerState::Finishing => "Finishing",
            WorkerState::Ending => "Ending",
        }
    }

    /// Whether a request is in progress (the span `request_terminate_timeout` bounds).
    pub fn in_request(self) -> bool {
        matches!(
            self,
            WorkerState::ReadingHeaders
                | WorkerState::GettingRequestInfo
                | WorkerState::Running
                | WorkerState::Finishing
        )
    }
}

/// Pool-wide counters at the start of the mapping.
#[repr(C)]
pub struct Header {
    magic: AtomicU64,
    version: AtomicU64,
    slots: AtomicU64,
    /// Connections accepted by all workers of this generation.
    pub accepted_conn: AtomicU64,
    /// Times the pool hit `pm.max_children`.
    pub max_children_reached: AtomicU64,
    /// Requests ended by `request_terminate_timeout`.
    pub terminated_requests: AtomicU64,
    /// Unix time the generation started (the status page's "start time").
    pub start_unix: AtomicU64,
    /// Most workers busy at once, as the master counts them each second.
    pub max_active: AtomicU64,
}

/// One worker's slot.
#[repr(C)]
pub struct Slot {
    seq: AtomicU32,
    state: AtomicU32,
    pid: AtomicU32,
    /// Set by the master: leave after the current request.
    quit: AtomicU32,
    /// Monotonic microseconds when the worker process started.
    started_us: AtomicU64,
    /// Requests served by this worker.
    requests: AtomicU64,
    /// Monotonic microseconds of the last state change that began a request or idle spell.
    since_us: AtomicU64,
    /// Wall clock microseconds the current request started at.
    request_wall_us: AtomicU64,
    content_length: AtomicU64,
    /// Set when the script called fastcgi_finish_request().
    finished_early: AtomicU64,
    last_cpu_us: AtomicU64,
    last_memory: AtomicU64,
    last_duration_us: AtomicU64,
    method: [AtomicU64; METHOD_LEN / 8],
    uri: [AtomicU64; URI_LEN / 8],
    query: [AtomicU64; QUERY_LEN / 8],
    script: [AtomicU64; SCRIPT_LEN / 8],
}

/// What a worker tells its slot when a request's parameters are known.
#[derive(Debug, Default, Clone, Copy)]
pub struct RequestInfo<'a> {
    /// REQUEST_METHOD.
    pub method: &'a [u8],
    /// REQUEST_URI without the query.
    pub uri: &'a [u8],
    /// QUERY_STRING.
    pub query: &'a [u8],
    /// SCRIPT_FILENAME.
    pub script: &'a [u8],
    /// CONTENT_LENGTH.
    pub content_length: u64,
}

/// A consistent copy of a slot, for the master and status pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotSnapshot {
    /// The worker's state.
    pub state: WorkerState,
    /// Its pid (0 before the master filled it in).
    pub pid: u32,
    /// Requests it served.
    pub requests: u64,
    /// Monotonic µs of its start.
    pub started_us: u64,
    /// Monotonic µs when the current request (or idle spell) began.
    pub since_us: u64,
    /// Wall clock µs of the current request's start.
    pub request_wall_us: u64,
    /// The current or last request.
    pub method: String,
    /// The current or last request URI.
    pub uri: String,
    /// The current or last query string.
    pub query: String,
    /// The current or last script.
    pub script: String,
    /// Its CONTENT_LENGTH.
    pub content_length: u64,
    /// fastcgi_finish_request() was called in the current request.
    pub finished_early: bool,
    /// CPU µs of the last request.
    pub last_cpu_us: u64,
    /// Peak memory of the last request.
    pub last_memory: u64,
    /// Wall µs of the last request.
    pub last_duration_us: u64,
    /// False when the worker was writing (or died writing) and the request fields may mix two requests.
    pub consistent: bool,
}

/// Monotonic clock in microseconds (CLOCK_MONOTONIC is system-wide, so a worker's
/// reading and the master's compare).
pub fn now_us() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
        .unwrap_or(0)
}

fn wall_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Stores `src` NUL-terminated: only the words it covers plus the one holding its
/// terminator are written (a few stores per request, not the whole field); what
/// lies after the terminator is never read.
fn store_bytes(dst: &[AtomicU64], src: &[u8]) {
    let words = (src.len() / 8 + 1).min(dst.len());
    let mut chunks = src.chunks(8);
    for word in &dst[..words] {
        let mut b = [0u8; 8];
        if let Some(c) = chunks.next() {
            b[..c.len()].copy_from_slice(c);
        }
        word.store(u64::from_ne_bytes(b), Ordering::Relaxed);
    }
}

fn load_bytes(src: &[AtomicU64]) -> String {
    let mut out = Vec::with_capacity(src.len() * 8);
    for word in src {
        out.extend_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
    }
    let end = out.iter().position(|&b| b == 0).unwrap_or(out.len());
    out.truncate(end);
    String::from_utf8_lossy(&out).into_owned()
}

/// Cuts `s` so that a NUL terminator still fits, as php-fpm's strlcpy does.
fn cut(s: &[u8], cap: usize) -> &[u8] {
    &s[..s.len().min(cap - 1)]
}

impl Slot {
    /// The worker's state.
    pub fn state(&self) -> WorkerState {
        WorkerState::from_u32(self.state.load(Ordering::Acquire))
    }

    /// The worker's pid.
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// Moves to `state`, stamping the time when it begins a request or an idle spell.
    pub fn set_state(&self, state: WorkerState) {
        if matches!(state, WorkerState::Idle | WorkerState::ReadingHeaders) {
            self.since_us.store(now_us(), Ordering::Relaxed);
        }
        self.state.store(state as u32, Ordering::Release);
    }

    /// Records the request the worker is about to run.
    pub fn begin_request(&self, info: &RequestInfo<'_>) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1) | 1, Ordering::Relaxed);
        fence(Ordering::Release);
        store_bytes(&self.method, cut(info.method, METHOD_LEN));
        store_bytes(&self.uri, cut(info.uri, URI_LEN));
        store_bytes(&self.query, cut(info.query, QUERY_LEN));
        store_bytes(&self.script, cut(info.script, SCRIPT_LEN));
        self.content_length
            .store(info.content_length, Ordering::Relaxed);
        self.request_wall_us.store(wall_us(), Ordering::Relaxed);
        self.finished_early.store(0, Ordering::Relaxed);
        self.seq
            .store((s.wrapping_add(1) | 1).wrapping_add(1), Ordering::Release);
        self.state
            .store(WorkerState::GettingRequestInfo as u32, Ordering::Release);
    }

    /// The script called fastcgi_finish_request(): the client has its answer.
    pub fn mark_finished_early(&self) {
        self.finished_early.store(1, Ordering::Relaxed);
    }

    /// Accounts a finished request.
    pub fn end_request(&self, cpu_us: u64, memory: u64) {
        let since = self.since_us.load(Ordering::Relaxed);
        self.last_duration_us
            .store(now_us().saturating_sub(since), Ordering::Relaxed);
        self.last_cpu_us.store(cpu_us, Ordering::Relaxed);
        self.last_memory.store(memory, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the master asked this worker to leave after its current request.
    pub fn quit_requested(&self) -> bool {
        self.quit.load(Ordering::Relaxed) != 0
    }

    /// The master asks the worker to leave after its current request.
    pub fn request_quit(&self) {
        self.quit.store(1, Ordering::Relaxed);
    }

    /// Prepares the slot for a new worker (master side, before fork).
    pub fn reset(&self) {
        self.seq.store(0, Ordering::Relaxed);
        self.pid.store(0, Ordering::Relaxed);
        self.quit.store(0, Ordering::Relaxed);
        self.started_us.store(now_us(), Ordering::Relaxed);
        self.since_us.store(now_us(), Ordering::Relaxed);
        for f in [
            &self.requests,
            &self.request_wall_us,
            &self.content_length,
            &self.finished_early,
            &self.last_cpu_us,
            &self.last_memory,
            &self.last_duration_us,
        ] {
            f.store(0, Ordering::Relaxed);
        }
        store_bytes(&self.method, b"");
        store_bytes(&self.uri, b"");
        store_bytes(&self.query, b"");
        store_bytes(&self.script, b"");
        self.state
            .store(WorkerState::Starting as u32, Ordering::Release);
    }

    /// Records the worker's pid (master side, after fork).
    pub fn set_pid(&self, pid: u32) {
        self.pid.store(pid, Ordering::Relaxed);
    }

    /// Marks the slot unused.
    pub fn free(&self) {
        self.state
            .store(WorkerState::Free as u32, Ordering::Release);
        self.pid.store(0, Ordering::Relaxed);
    }

    /// A copy of the slot; request fields are retried while the worker writes them.
    pub fn snapshot(&self) -> SlotSnapshot {
        let mut consistent = false;
        let mut snap;
        let mut tries = 0;
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            snap = SlotSnapshot {
                state: self.state(),
                pid: self.pid(),
                requests: self.requests.load(Ordering::Relaxed),
                started_us: self.started_us.load(Ordering::Relaxed),
                since_us: self.since_us.load(Ordering::Relaxed),
                request_wall_us: self.request_wall_us.load(Ordering::Relaxed),
                method: load_bytes(&self.method),
                uri: load_bytes(&self.uri),
                query: load_bytes(&self.query),
                script: load_bytes(&self.script),
                content_length: self.content_length.load(Ordering::Relaxed),
                finished_early: self.finished_early.load(Ordering::Relaxed) != 0,
                last_cpu_us: self.last_cpu_us.load(Ordering::Relaxed),
                last_memory: self.last_memory.load(Ordering::Relaxed),
                last_duration_us: self.last_duration_us.load(Ordering::Relaxed),
                consistent: false,
            };
            fence(Ordering::Acquire);
            let s2 = self.seq.load(Ordering::Relaxed);
            if s1 == s2 && s1 & 1 == 0 {
                consistent = true;
                break;
            }
            tries += 1;
            if tries >= 64 {
                break;
            }
            std::hint::spin_loop();
        }
        snap.consistent = consistent;
        snap
    }
}

/// One pool generation's shared mapping.
pub struct Scoreboard {
    fd: OwnedFd,
    base: NonNull<u8>,
    map_len: usize,
    slots: usize,
}

fn layout_len(slots: usize) -> usize {
    std::mem::size_of::<Header>() + slots * std::mem::size_of::<Slot>()
}

impl Scoreboard {
    /// Creates a zeroed scoreboard with `slots` slots.
    ///
    /// # Errors
    /// When memfd_create, ftruncate or mmap fails.
    pub fn create(slots: usize) -> io::Result<Scoreboard> {
        let fd = memfd_create(c"php-fpm-rs scoreboard", MemFdCreateFlag::MFD_CLOEXEC)?;
        let len = layout_len(slots);
        nix::unistd::ftruncate(&fd, len as i64)?;
        let board = Self::map(fd, len, slots)?;
        let h = board.header();
        h.magic.store(MAGIC, Ordering::Relaxed);
        h.version.store(LAYOUT_VERSION, Ordering::Relaxed);
        h.start_unix.store(wall_us() / 1_000_000, Ordering::Relaxed);
        h.slots.store(slots as u64, Ordering::Release);
        Ok(board)
    }

    /// Maps a scoreboard handed over by the previous master image.
    ///
    /// # Errors
    /// When the descriptor is not a scoreboard of this layout.
    pub fn adopt(fd: OwnedFd) -> io::Result<Scoreboard> {
        let size = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd))?.st_size as usize;
        if size < std::mem::size_of::<Header>() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "inherited scoreboard is too small",
            ));
        }
        let slots = (size - std::mem::size_of::<Header>()) / std::mem::size_of::<Slot>();
        let board = Self::map(fd, size, slots)?;
        let h = board.header();
        if h.magic.load(Ordering::Relaxed) != MAGIC
            || h.version.load(Ordering::Relaxed) != LAYOUT_VERSION
            || h.slots.load(Ordering::Relaxed) != slots as u64
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "inherited scoreboard has another layout",
            ));
        }
        Ok(board)
    }

    fn map(fd: OwnedFd, len: usize, slots: usize) -> io::Result<Scoreboard> {
        let size = std::num::NonZeroUsize::new(len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty scoreboard"))?;
        // SAFETY: a fresh shared mapping of a descriptor we own, at an address the
        // kernel picks; nothing else in this process refers to that range yet.
        let ptr = unsafe {
            mmap(
                None,
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &fd,
                0,
            )
        }?;
        Ok(Scoreboard {
            fd,
            base: ptr.cast(),
            map_len: len,
            slots,
        })
    }

    /// Whether the header still reads as this layout (nothing overwrote it).
    pub fn is_intact(&self) -> bool {
        let h = self.header();
        h.magic.load(Ordering::Relaxed) == MAGIC
            && h.version.load(Ordering::Relaxed) == LAYOUT_VERSION
            && h.slots.load(Ordering::Relaxed) == self.slots as u64
    }

    /// The descriptor behind the mapping (handed to the next image on reload).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.slots
    }

    /// Whether there are no slots.
    pub fn is_empty(&self) -> bool {
        self.slots == 0
    }

    /// The pool-wide counters.
    pub fn header(&self) -> &Header {
        // SAFETY: the mapping is at least size_of::<Header>() bytes, page aligned,
        // lives as long as `self`, and holds only atomics, for which any bit pattern
        // (zeroed memory included) is valid and shared mutation is sound.
        unsafe { &*(self.base.as_ptr() as *const Header) }
    }

    /// Slot `i`, if it exists.
    pub fn slot(&self, i: usize) -> Option<&Slot> {
        if i >= self.slots {
            return None;
        }
        let off = std::mem::size_of::<Header>() + i * std::mem::size_of::<Slot>();
        // SAFETY: `off + size_of::<Slot>() <= map_len` since i < slots; Header and Slot
        // sizes are multiples of 8 so the slot is aligned; the memory is atomics only
        // (see header()) and outlives the returned reference.
        Some(unsafe { &*(self.base.as_ptr().add(off) as *const Slot) })
    }

    /// Every slot in order.
    pub fn slots(&self) -> impl Iterator<Item = &Slot> {
        (0..self.slots).filter_map(|i| self.slot(i))
    }
}

impl Drop for Scoreboard {
    fn drop(&mut self) {
        // SAFETY: `base`/`map_len` are exactly what mmap returned; references into the
        // mapping borrow `self`, so none outlive this call.
        let _ = unsafe { munmap(self.base.cast(), self.map_len) };
    }
}

impl std::fmt::Debug for Scoreboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoreboard")
            .field("slots", &self.slots)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_start_free_and_round_trip_a_request() {
        let board = Scoreboard::create(4).expect("scoreboard");
        assert_eq!(board.len(), 4);
        let slot = board.slot(2).expect("slot");
        assert_eq!(slot.state(), WorkerState::Free);
        slot.reset();
        slot.set_pid(1234);
        assert_eq!(slot.state(), WorkerState::Starting);
        slot.set_state(WorkerState::Idle);
        slot.begin_request(&RequestInfo {
            method: b"POST",
            uri: b"/index.php",
            query: b"a=1",
            script: b"/var/www/index.php",
            content_length: 42,
        });
        let snap = slot.snapshot();
        assert!(snap.consistent);
        assert_eq!(snap.pid, 1234);
        assert_eq!(snap.state, WorkerState::GettingRequestInfo);
        assert_eq!(snap.method, "POST");
        assert_eq!(snap.uri, "/index.php");
        assert_eq!(snap.query, "a=1");
        assert_eq!(snap.script, "/var/www/index.php");
        assert_eq!(snap.content_length, 42);
        slot.end_request(7, 2 << 20);
        let snap = slot.snapshot();
        assert_eq!(
            (snap.requests, snap.last_cpu_us, snap.last_memory),
            (1, 7, 2 << 20)
        );
        assert!(board.slot(4).is_none());
    }

    #[test]
    fn a_shorter_value_replaces_a_longer_one() {
        let board = Scoreboard::create(1).expect("scoreboard");
        let slot = board.slot(0).expect("slot");
        for uri in [
            &b"/a/much/longer/path/than/the/next/one.php"[..],
            b"/x.php",
            b"/1234567",
            b"/12345678",
            b"",
        ] {
            slot.begin_request(&RequestInfo {
                uri,
                ..RequestInfo::default()
            });
            assert_eq!(slot.snapshot().uri.as_bytes(), uri);
        }
    }

    #[test]
    fn long_fields_are_cut_and_a_dead_writer_reads_as_torn() {
        let board = Scoreboard::create(1).expect("scoreboard");
        let slot = board.slot(0).expect("slot");
        let long = vec![b'x'; 1000];
        slot.begin_request(&RequestInfo {
            uri: &long,
            ..RequestInfo::default()
        });
        assert_eq!(slot.snapshot().uri.len(), URI_LEN - 1);
        // a writer killed between the two sequence stores leaves it odd
        slot.seq.store(5, Ordering::Relaxed);
        let snap = slot.snapshot();
        assert!(
            !snap.consistent,
            "an odd sequence must not read as consistent"
        );
    }

    #[test]
    fn adopting_checks_the_layout() {
        let board = Scoreboard::create(3).expect("scoreboard");
        board.header().accepted_conn.store(9, Ordering::Relaxed);
        let fd = board.fd().try_clone_to_owned().expect("dup");
        let adopted = Scoreboard::adopt(fd).expect("adopt");
        assert_eq!(adopted.len(), 3);
        assert_eq!(adopted.header().accepted_conn.load(Ordering::Relaxed), 9);
        let junk = memfd_create(c"junk", MemFdCreateFlag::MFD_CLOEXEC).expect("memfd");
        nix::unistd::ftruncate(&junk, 4096).expect("truncate");
        assert!(Scoreboard::adopt(junk).is_err());
    }
}
