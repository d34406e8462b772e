//! The PHP binding: a safe API over the C shim. [`Engine`] starts PHP once in the
//! master (so opcache's shared memory and the extensions are inherited by every
//! forked worker) and runs one request at a time in a worker through [`RequestIo`].
//!
//! Rust never calls PHP from a callback and PHP never unwinds into Rust: the shim
//! runs the whole request inside `zend_try`, and the callbacks below only move bytes.

mod ffi;

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// Version of the PHP the binary was built against.
pub const PHP_VERSION: &str = env!("PHP_FPM_RS_PHP_VERSION");

/// Where the request's bytes come from and go to, implemented by the worker.
pub trait RequestIo {
    /// Takes response bytes (headers, then body). `false` when the client is gone.
    fn write(&mut self, data: &[u8]) -> bool;
    /// Sends what is buffered. `false` when the client is gone.
    fn flush(&mut self) -> bool;
    /// Fills `buf` with request body bytes; 0 at the end of the body.
    fn read_body(&mut self, buf: &mut [u8]) -> usize;
    /// A PHP log line (warning, fatal error) produced by the script.
    fn log_message(&mut self, msg: &[u8]);
    /// `fastcgi_finish_request()`: completes the response now. `false` if it already was.
    fn finish_request(&mut self) -> bool;
    /// `fpm_get_status()`: the pool's status as php-fpm's array, in JSON; `None`
    /// makes the function return false.
    fn status_json(&mut self) -> Option<Vec<u8>> {
        None
    }
}

/// How PHP finds its configuration, as php-fpm's `-c`, `-n` and `-d`.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// `-c`: a php.ini file or the directory holding it.
    pub ini_path: Option<PathBuf>,
    /// `-n`: no php.ini at all.
    pub no_ini: bool,
    /// `-d name=value` entries, in order.
    pub defines: Vec<(String, String)>,
}

/// A byte string stored with its NUL terminator, so C borrows it in place without a
/// copy or a scan. C reads it up to its first NUL, as php-fpm's FastCGI layer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NulTerminated<'a>(&'a [u8]);

impl<'a> NulTerminated<'a> {
    /// `with_nul` must end with its NUL terminator; `None` otherwise.
    pub fn new(with_nul: &'a [u8]) -> Option<Self> {
        (with_nul.last() == Some(&0)).then_some(NulTerminated(with_nul))
    }

    /// The bytes before the terminator (an embedded NUL included).
    pub fn bytes(&self) -> &'a [u8] {
        &self.0[..self.0.len() - 1]
    }

    fn as_ptr(&self) -> *const c_char {
        self.0.as_ptr().cast()
    }
}

/// One request to run, all strings already fixed up by the CGI layer. The `$_SERVER`
/// variables go to [`Engine::run`] beside it.
#[derive(Default)]
pub struct Script<'a> {
    /// REQUEST_METHOD; without it nothing runs (not an HTTP request).
    pub request_method: Option<NulTerminated<'a>>,
    /// QUERY_STRING.
    pub query_string: Option<NulTerminated<'a>>,
    /// The fixed-up SCRIPT_NAME, base of PHP_SELF.
    pub request_uri: Option<NulTerminated<'a>>,
    /// REQUEST_URI as the web server sent it, for the fields of PHP's log messages.
    pub http_request_uri: Option<NulTerminated<'a>>,
    /// The file to run; `None` answers 404 "File not found.".
    pub script_filename: Option<NulTerminated<'a>>,
    /// CONTENT_TYPE.
    pub content_type: Option<NulTerminated<'a>>,
    /// HTTP_COOKIE.
    pub cookie: Option<NulTerminated<'a>>,
    /// HTTP_AUTHORIZATION.
    pub authorization: Option<NulTerminated<'a>>,
    /// PHP_VALUE param: ini lines for this request only.
    pub php_value: Option<NulTerminated<'a>>,
    /// PHP_ADMIN_VALUE param.
    pub php_admin_value: Option<NulTerminated<'a>>,
    /// CONTENT_LENGTH.
    pub content_length: u64,
    /// cgi.fix_pathinfo was on when the path was resolved.
    pub fix_pathinfo: bool,
    /// security.limit_extensions refused the script: 403 "Access denied.".
    pub access_denied: bool,
}

/// What a request did, for logs and accounting.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    /// The HTTP status PHP settled on.
    pub http_status: u16,
    /// `exit()` status; 255 after a fatal error.
    pub exit_status: i32,
    /// Peak memory of the request in bytes.
    pub peak_memory: usize,
    /// errno when the primary script could not be opened.
    pub open_failed_errno: Option<i32>,
}

/// Errors of the engine's life cycle.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// php_module_startup failed (bad php.ini, extension load error).
    #[error("PHP module startup failed (see the messages above)")]
    StartupFailed,
    /// Only one engine per process: PHP's globals are process-wide.
    #[error("the PHP engine is already started in this process")]
    AlreadyStarted,
    /// A string handed to PHP held a NUL byte.
    #[error("{what} contains a NUL byte")]
    Nul {
        /// Which value.
        what: String,
    },
    /// php_request_startup failed.
    #[error("PHP request startup failed")]
    RequestStartup,
    /// A pool php_value / php_admin_value was refused.
    #[error("unable to set {kind} '{name}'")]
    IniRefused {
        /// php_value or php_admin_value.
        kind: &'static str,
        /// The ini name.
        name: String,
    },
}

static STARTED: AtomicBool = AtomicBool::new(false);

/// The started PHP engine. Not `Send`: PHP (NTS) belongs to the thread that started it.
pub struct Engine {
    vars: Vec<ffi::Var>,
    _not_send: std::marker::PhantomData<*const ()>,
}

fn cstring(what: &str, s: &str) -> Result<CString, EngineError> {
    CString::new(s).map_err(|_| EngineError::Nul {
        what: what.to_string(),
    })
}

fn opt_ptr(s: Option<NulTerminated<'_>>) -> *const c_char {
    s.map_or(std::ptr::null(), |s| s.as_ptr())
}

impl Engine {
    /// Starts PHP: reads php.ini, loads extensions (opcache among them).
    ///
    /// # Errors
    /// When PHP's module startup fails or an engine already runs in this process.
    pub fn start(opts: &EngineOptions) -> Result<Engine, EngineError> {
        if STARTED.swap(true, Ordering::SeqCst) {
            return Err(EngineError::AlreadyStarted);
        }
        let ini_path = match &opts.ini_path {
            Some(p) => Some(cstring("-c path", &p.to_string_lossy())?),
            None => None,
        };
        let mut entries = String::new();
        for (k, v) in &opts.defines {
            entries.push_str(k);
            entries.push('=');
            entries.push_str(v);
            entries.push('\n');
        }
        let entries = if entries.is_empty() {
            None
        } else {
            Some(cstring("-d", &entries)?)
        };
        let startup = ffi::StartupOpts {
            ini_path_override: ini_path.as_deref().map_or(std::ptr::null(), CStr::as_ptr),
            ini_ignore: c_int::from(opts.no_ini),
            ini_entries: entries.as_deref().map_or(std::ptr::null(), CStr::as_ptr),
            callbacks: ffi::Callbacks {
                write: cb_write,
                flush: cb_flush,
                read_body: cb_read_body,
                log_message: cb_log_message,
                finish_request: cb_finish_request,
                status_json: cb_status_json,
            },
        };
        // SAFETY: `startup` and the strings it points to live across the call (the shim
        // copies what it keeps); STARTED guarantees a single startup per process.
        let rc = unsafe { ffi::fpmrs_startup(&startup) };
        if rc != 0 {
            return Err(EngineError::StartupFailed);
        }
        Ok(Engine {
            vars: Vec::new(),
            _not_send: std::marker::PhantomData,
        })
    }

    /// Re-arms PHP's signal handling in a freshly forked worker.
    pub fn child_init(&mut self) {
        // SAFETY: called in a single-threaded child after fork, before any request.
        unsafe { ffi::fpmrs_child_init() }
    }

    /// Applies a pool's `php_value` / `php_admin_value` as the new default of this process.
    ///
    /// # Errors
    /// When PHP refuses the name or the value.
    pub fn apply_pool_ini(
        &mut self,
        name: &str,
        value: &str,
        admin: bool,
    ) -> Result<(), EngineError> {
        let n = cstring("ini name", name)?;
        let v = cstring("ini value", value)?;
        // SAFETY: both strings are valid NUL-terminated C strings for the call.
        let rc = unsafe { ffi::fpmrs_ini_apply_master(n.as_ptr(), v.as_ptr(), c_int::from(admin)) };
        if rc != 0 {
            return Err(EngineError::IniRefused {
                kind: if admin {
                    "php_admin_value"
                } else {
                    "php_value"
                },
                name: name.to_string(),
            });
        }
        Ok(())
    }

    /// The current value of a boolean ini setting (`cgi.fix_pathinfo`, ...).
    pub fn ini_bool(&self, name: &str) -> bool {
        let Ok(n) = CString::new(name) else {
            return false;
        };
        // SAFETY: `n` is a valid C string; the engine is started.
        unsafe { ffi::fpmrs_ini_bool(n.as_ptr()) != 0 }
    }

    /// Whether `path` exists, resolved through PHP's realpath cache (`realpath_cache_size`,
    /// `realpath_cache_ttl`), as php-fpm checks SCRIPT_FILENAME.
    pub fn realpath_exists(&self, path: &[u8]) -> bool {
        let Ok(p) = CString::new(path) else {
            return false;
        };
        // SAFETY: `p` is a valid C string; the engine is started and runs no request.
        unsafe { ffi::fpmrs_realpath_exists(p.as_ptr()) != 0 }
    }

    /// Runs one request to completion with `vars` as its `$_SERVER` variables (in
    /// order; later ones win on lookup). Output and body go through `io`.
    ///
    /// # Errors
    /// When PHP cannot start the request at all.
    pub fn run<'v>(
        &mut self,
        script: &Script<'_>,
        vars: impl Iterator<Item = (NulTerminated<'v>, NulTerminated<'v>)>,
        io: &mut dyn RequestIo,
    ) -> Result<Outcome, EngineError> {
        self.vars.clear();
        self.vars.extend(vars.map(|(n, v)| ffi::Var {
            name: n.as_ptr(),
            name_len: n.bytes().len(),
            value: v.as_ptr(),
            value_len: v.bytes().len(),
        }));
        // PHP messages sent to the journal name their request (only looked up then)
        let _log_scope = crate::logging::journal::direct().then(|| {
            crate::logging::journal::RequestScope::enter(
                script.script_filename.map(|s| s.bytes()),
                script.request_method.map(|s| s.bytes()),
                script.http_request_uri.map(|s| s.bytes()),
            )
        });
        let mut io_ref: &mut dyn RequestIo = io;
        let req = ffi::Request {
            ctx: (&mut io_ref as *mut &mut dyn RequestIo).cast::<c_void>(),
            vars: self.vars.as_ptr(),
            vars_len: self.vars.len(),
            request_method: opt_ptr(script.request_method),
            query_string: opt_ptr(script.query_string),
            request_uri: opt_ptr(script.request_uri),
            script_filename: opt_ptr(script.script_filename),
            content_type: opt_ptr(script.content_type),
            cookie: opt_ptr(script.cookie),
            authorization: opt_ptr(script.authorization),
            php_value: opt_ptr(script.php_value),
            php_admin_value: opt_ptr(script.php_admin_value),
            content_length: script.content_length.min(i64::MAX as u64) as std::os::raw::c_long,
            fix_pathinfo: c_int::from(script.fix_pathinfo),
            access_denied: c_int::from(script.access_denied),
        };
        let mut out = ffi::RequestResult::default();
        // SAFETY: every pointer in `req` borrows from `script`, `self.vars` or `io_ref`,
        // all of which outlive the call; the shim keeps none of them afterwards.
        let rc = unsafe { ffi::fpmrs_execute(&req, &mut out) };
        if rc != 0 {
            return Err(EngineError::RequestStartup);
        }
        Ok(Outcome {
            http_status: u16::try_from(out.http_status).unwrap_or(500),
            exit_status: out.exit_status,
            peak_memory: out.peak_memory,
            open_failed_errno: (out.open_failed_errno != 0).then_some(out.open_failed_errno),
        })
    }

    /// `-i`: phpinfo() as text on stdout.
    pub fn print_info(&mut self) -> bool {
        // SAFETY: engine started, no request in flight.
        unsafe { ffi::fpmrs_print_info() == 0 }
    }

    /// `-m`: the loaded PHP and Zend modules on stdout.
    pub fn print_modules(&mut self) -> bool {
        // SAFETY: engine started, no request in flight.
        unsafe { ffi::fpmrs_print_modules() == 0 }
    }

    /// `-v`: the version banner on stdout.
    pub fn print_version(&mut self) -> bool {
        // SAFETY: engine started, no request in flight.
        unsafe { ffi::fpmrs_print_version() == 0 }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: the engine was started by `start` and no request is in flight.
        unsafe { ffi::fpmrs_shutdown() }
    }
}

/// # Safety
/// `ctx` is the `&mut &mut dyn RequestIo` that `Engine::run` passed to the shim.
unsafe fn io<'a>(ctx: *mut c_void) -> &'a mut dyn RequestIo {
    // SAFETY: per the function contract, ctx points at a live `&mut dyn RequestIo`.
    unsafe { &mut **ctx.cast::<&mut dyn RequestIo>() }
}

unsafe extern "C" fn cb_write(ctx: *mut c_void, buf: *const c_char, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    // SAFETY: PHP hands us `len` readable bytes at `buf`; ctx is from Engine::run.
    let (io, data) = unsafe { (io(ctx), std::slice::from_raw_parts(buf.cast::<u8>(), len)) };
    if io.write(data) {
        len
    } else {
        0
    }
}

unsafe extern "C" fn cb_flush(ctx: *mut c_void) -> c_int {
    // SAFETY: ctx is from Engine::run.
    if unsafe { io(ctx) }.flush() {
        0
    } else {
        -1
    }
}

unsafe extern "C" fn cb_read_body(ctx: *mut c_void, buf: *mut c_char, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    // SAFETY: PHP hands us `len` writable bytes at `buf`; ctx is from Engine::run.
    let (io, data) = unsafe {
        (
            io(ctx),
            std::slice::from_raw_parts_mut(buf.cast::<u8>(), len),
        )
    };
    io.read_body(data)
}

unsafe extern "C" fn cb_log_message(
    ctx: *mut c_void,
    msg: *const c_char,
    len: usize,
    syslog_type: c_int,
) {
    // SAFETY: PHP hands us `len` readable bytes at `msg`; ctx is from Engine::run.
    let (io, data) = unsafe { (io(ctx), std::slice::from_raw_parts(msg.cast::<u8>(), len)) };
    // the journal gets it with its priority too; the client's stderr always does
    crate::logging::journal::php_message(syslog_type, data);
    io.log_message(data);
}

unsafe extern "C" fn cb_finish_request(ctx: *mut c_void) -> c_int {
    // SAFETY: ctx is from Engine::run.
    c_int::from(unsafe { io(ctx) }.finish_request())
}

unsafe extern "C" fn cb_status_json(ctx: *mut c_void, buf: *mut c_char, cap: usize) -> usize {
    // SAFETY: ctx is from Engine::run.
    let Some(json) = unsafe { io(ctx) }.status_json() else {
        return 0;
    };
    if json.len() <= cap {
        // SAFETY: the shim hands us `cap` writable bytes at `buf`; we copy fewer.
        unsafe { std::ptr::copy_nonoverlapping(json.as_ptr(), buf.cast::<u8>(), json.len()) };
    }
    json.len()
}
