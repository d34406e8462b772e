//! Declarations of the C shim's items (src/php/shim.h). Only this file names them.

use std::os::raw::{c_char, c_int, c_long, c_void};

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Callbacks {
    pub write: unsafe extern "C" fn(ctx: *mut c_void, buf: *const c_char, len: usize) -> usize,
    pub flush: unsafe extern "C" fn(ctx: *mut c_void) -> c_int,
    pub read_body: unsafe extern "C" fn(ctx: *mut c_void, buf: *mut c_char, len: usize) -> usize,
    pub log_message:
        unsafe extern "C" fn(ctx: *mut c_void, msg: *const c_char, len: usize, syslog_type: c_int),
    pub finish_request: unsafe extern "C" fn(ctx: *mut c_void) -> c_int,
    pub status_json: unsafe extern "C" fn(ctx: *mut c_void, buf: *mut c_char, cap: usize) -> usize,
}

#[repr(C)]
pub struct StartupOpts {
    pub ini_path_override: *const c_char,
    pub ini_ignore: c_int,
    pub ini_entries: *const c_char,
    pub callbacks: Callbacks,
}

#[repr(C)]
pub struct Var {
    pub name: *const c_char,
    pub name_len: usize,
    pub value: *const c_char,
    pub value_len: usize,
}

#[repr(C)]
pub struct Request {
    pub ctx: *mut c_void,
    pub vars: *const Var,
    pub vars_len: usize,
    pub request_method: *const c_char,
    pub query_string: *const c_char,
    pub request_uri: *const c_char,
    pub script_filename: *const c_char,
    pub content_type: *const c_char,
    pub cookie: *const c_char,
    pub authorization: *const c_char,
    pub php_value: *const c_char,
    pub php_admin_value: *const c_char,
    pub content_length: c_long,
    pub fix_pathinfo: c_int,
    pub access_denied: c_int,
}

#[repr(C)]
#[derive(Default)]
pub struct RequestResult {
    pub http_status: c_int,
    pub exit_status: c_int,
    pub peak_memory: usize,
    pub open_failed_errno: c_int,
}

extern "C" {
    pub fn fpmrs_startup(opts: *const StartupOpts) -> c_int;
    pub fn fpmrs_shutdown();
    pub fn fpmrs_child_init();
    pub fn fpmrs_realpath_exists(path: *const c_char) -> c_int;
    pub fn fpmrs_ini_apply_master(name: *const c_char, value: *const c_char, admin: c_int)
        -> c_int;
    pub fn fpmrs_ini_bool(name: *const c_char) -> c_int;
    pub fn fpmrs_execute(req: *const Request, out: *mut RequestResult) -> c_int;
    pub fn fpmrs_print_info() -> c_int;
    pub fn fpmrs_print_modules() -> c_int;
    pub fn fpmrs_print_version() -> c_int;
}
