/*
 * The C side of the PHP binding. Everything that can longjmp (zend_try, bailouts,
 * fatal errors) stays on this side; Rust only sees plain calls and return codes.
 * The Rust declarations of these items are in src/php/ffi.rs and must match.
 */
#ifndef FPMRS_SHIM_H
#define FPMRS_SHIM_H

#include <stddef.h>

/* Callbacks into Rust. They only move bytes and return codes; they never call PHP. */
typedef struct fpmrs_callbacks {
	/* Response bytes (headers and body). Returns bytes taken; 0 means the client is gone. */
	size_t (*write)(void *ctx, const char *buf, size_t len);
	/* Push buffered response bytes to the client. 0 ok, -1 client gone. */
	int (*flush)(void *ctx);
	/* Request body. Returns bytes copied into buf; 0 at the end of the body. */
	size_t (*read_body)(void *ctx, char *buf, size_t len);
	/* A PHP log message (warnings, fatal errors) for the client's stderr and the log,
	 * with the syslog priority PHP gives it (LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO). */
	void (*log_message)(void *ctx, const char *msg, size_t len, int syslog_type);
	/* fastcgi_finish_request(): end the response now. 1 if it ended now, 0 if already ended. */
	int (*finish_request)(void *ctx);
	/* fpm_get_status(): the pool's status as JSON, copied into buf up to cap bytes.
	 * Returns the full length (call again with more room if larger), 0 for none. */
	size_t (*status_json)(void *ctx, char *buf, size_t cap);
} fpmrs_callbacks;

/* Process-wide settings for module startup. */
typedef struct fpmrs_startup_opts {
	const char *ini_path_override; /* -c: php.ini file or directory, or NULL */
	int ini_ignore;                /* -n */
	const char *ini_entries;       /* -d lines, "k=v\n"..., or NULL */
	fpmrs_callbacks callbacks;
} fpmrs_startup_opts;

/* One request variable (a FastCGI param after path fix-up). Both strings are
 * NUL-terminated; a length counts the bytes before the terminator, so a string with an
 * embedded NUL is longer than strlen() says. */
typedef struct fpmrs_var {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
} fpmrs_var;

/* What to run. Strings are NUL-terminated or NULL; they live until fpmrs_execute returns. */
typedef struct fpmrs_request {
	void *ctx;
	const fpmrs_var *vars;
	size_t vars_len;
	const char *request_method;
	const char *query_string;
	const char *request_uri;     /* SCRIPT_NAME as fixed up: the base of PHP_SELF */
	const char *script_filename; /* NULL: "File not found." with 404 */
	const char *content_type;
	const char *cookie;
	const char *authorization;
	const char *php_value;       /* PHP_VALUE param, or NULL */
	const char *php_admin_value; /* PHP_ADMIN_VALUE param, or NULL */
	long content_length;
	int fix_pathinfo;            /* PHP_SELF = request_uri + PATH_INFO when set */
	int access_denied;           /* security.limit_extensions refused the script: 403 */
} fpmrs_request;

/* What happened, for the access log and the scoreboard. */
typedef struct fpmrs_result {
	int http_status;
	int exit_status;
	size_t peak_memory;
	int open_failed_errno; /* errno when the primary script could not be opened, else 0 */
} fpmrs_result;

int fpmrs_startup(const fpmrs_startup_opts *opts);
void fpmrs_shutdown(void);
void fpmrs_child_init(void);
/* Whether path exists, resolved through PHP's realpath cache. */
int fpmrs_realpath_exists(const char *path);
int fpmrs_ini_apply_master(const char *name, const char *value, int admin);
int fpmrs_ini_bool(const char *name);
int fpmrs_execute(const fpmrs_request *req, fpmrs_result *out);
int fpmrs_print_info(void);
int fpmrs_print_modules(void);
int fpmrs_print_version(void);

#endif
