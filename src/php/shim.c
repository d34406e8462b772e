/*
 * The SAPI "fpm-fcgi" for php-fpm-rs: the module struct, the request lifecycle under
 * zend_try, and the functions PHP-FPM gives scripts (fastcgi_finish_request,
 * apache_request_headers/getallheaders, fpm_get_status). Policy lives in Rust; this
 * file only touches PHP internals, because a PHP bailout longjmps and must never
 * cross a Rust frame.
 */
#include "php.h"
#include "php_main.h"
#include "php_variables.h"
#include "php_ini.h"
#include "SAPI.h"
#include "ext/standard/info.h"
#include "ext/standard/dl.h"
#include "zend_ini.h"
#include "zend_modules.h"
#include "zend_exceptions.h"
#include "zend_extensions.h"
#include "zend_ini_scanner.h"
#include "zend_virtual_cwd.h"
#include "zend_signal.h"
#include "main/php_output.h"
#include "ext/json/php_json.h"

#include <errno.h>
#include <syslog.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

static fpmrs_callbacks cb;
/* The request being served by this (single-threaded) worker, or NULL outside one. */
static const fpmrs_request *current;
static bool log_started;

/* php_admin_value names: PHP_VALUE / PHP_ADMIN_VALUE may not override them. */
#define FPMRS_MAX_LOCKED 256
static char *locked_names[FPMRS_MAX_LOCKED];
static size_t locked_len;

typedef struct {
	bool rfc2616_headers;
	bool nph;
	bool fix_pathinfo;
	bool discard_path;
	bool script_path_encoded;
	bool logging;
	char *error_header;
	char *fpm_config;
} fpmrs_cgi_globals;
static fpmrs_cgi_globals cgi_globals;

static const struct { int code; const char *text; } status_texts[] = {
	{100, "Continue"}, {101, "Switching Protocols"}, {200, "OK"}, {201, "Created"},
	{202, "Accepted"}, {203, "Non-Authoritative Information"}, {204, "No Content"},
	{205, "Reset Content"}, {206, "Partial Content"}, {300, "Multiple Choices"},
	{301, "Moved Permanently"}, {302, "Found"}, {303, "See Other"}, {304, "Not Modified"},
	{305, "Use Proxy"}, {307, "Temporary Redirect"}, {308, "Permanent Redirect"},
	{400, "Bad Request"}, {401, "Unauthorized"}, {402, "Payment Required"},
	{403, "Forbidden"}, {404, "Not Found"}, {405, "Method Not Allowed"},
	{406, "Not Acceptable"}, {407, "Proxy Authentication Required"},
	{408, "Request Timeout"}, {409, "Conflict"}, {410, "Gone"}, {411, "Length Required"},
	{412, "Precondition Failed"}, {413, "Request Entity Too Large"},
	{414, "Request-URI Too Long"}, {415, "Unsupported Media Type"},
	{416, "Requested Range Not Satisfiable"}, {417, "Expectation Failed"},
	{426, "Upgrade Required"}, {428, "Precondition Required"},
	{429, "Too Many Requests"}, {431, "Request Header Fields Too Large"},
	{451, "Unavailable For Legal Reasons"}, {500, "Internal Server Error"},
	{501, "Not Implemented"}, {502, "Bad Gateway"}, {503, "Service Unavailable"},
	{504, "Gateway Timeout"}, {505, "HTTP Version Not Supported"},
	{506, "Variant Also Negotiates"}, {511, "Network Authentication Required"},
	{0, NULL}
};

static const char *find_var(const char *name, size_t name_len)
{
	if (!current) {
		return NULL;
	}
	for (size_t i = current->vars_len; i > 0; i--) {
		const fpmrs_var *v = &current->vars[i - 1];
		if (v->name_len == name_len && memcmp(v->name, name, name_len) == 0) {
			return v->value;
		}
	}
	return NULL;
}

static size_t sapi_fpmrs_ub_write(const char *str, size_t len)
{
	if (!current) {
		/* -i, -m, -v: outside any request output goes to our own stdout */
		ssize_t n = write(STDOUT_FILENO, str, len);
		return n > 0 ? (size_t)n : 0;
	}
	size_t n = cb.write(current->ctx, str, len);
	if (n < len) {
		php_handle_aborted_connection();
	}
	return n;
}

static void sapi_fpmrs_flush(void *server_context)
{
	if (!current) {
		return;
	}
	/* As php-fpm 8.2: flush() pushes bytes already written, it does not send headers. */
	if (cb.flush(current->ctx) != 0) {
		php_handle_aborted_connection();
	}
}

#define FPMRS_MAX_HEADER 1024

/* The same header block php-fpm writes, Status line rules included. */
static int sapi_fpmrs_send_headers(sapi_headers_struct *sapi_headers)
{
	char buf[FPMRS_MAX_HEADER];
	sapi_header_struct *h;
	zend_llist_position pos;
	bool ignore_status = false;
	int response_status = SG(sapi_headers).http_response_code;

	if (SG(request_info).no_headers == 1) {
		return SAPI_HEADER_SENT_SUCCESSFULLY;
	}
	if (cgi_globals.nph || SG(sapi_headers).http_response_code != 200) {
		int len = 0;
		bool has_status = false;
		char *line = SG(sapi_headers).http_status_line;
		char *s;

		if (cgi_globals.rfc2616_headers && line) {
			len = slprintf(buf, sizeof(buf), "%s", line);
			if ((s = strchr(line, ' '))) {
				response_status = atoi(s + 1);
			}
		} else if (line && (s = strchr(line, ' ')) != NULL && (s - line) >= 5 &&
				strncasecmp(line, "HTTP/", 5) == 0) {
			len = slprintf(buf, sizeof(buf), "Status:%s", s);
			response_status = atoi(s + 1);
		} else {
			h = (sapi_header_struct *)zend_llist_get_first_ex(&sapi_headers->headers, &pos);
			while (h) {
				if (h->header_len > sizeof("Status:") - 1 &&
						strncasecmp(h->header, "Status:", sizeof("Status:") - 1) == 0) {
					has_status = true;
					break;
				}
				h = (sapi_header_struct *)zend_llist_get_next_ex(&sapi_headers->headers, &pos);
			}
			if (!has_status) {
				int code = SG(sapi_headers).http_response_code;
				const char *text = NULL;
				for (size_t i = 0; status_texts[i].code; i++) {
					if (status_texts[i].code == code) {
						text = status_texts[i].text;
						break;
					}
				}
				if (text) {
					len = slprintf(buf, sizeof(buf), "Status: %d %s", code, text);
				} else {
					len = slprintf(buf, sizeof(buf), "Status: %d", code);
				}
			}
		}
		if (!has_status) {
			if (len > FPMRS_MAX_HEADER) {
				len = FPMRS_MAX_HEADER;
			}
			PHPWRITE_H(buf, len);
			PHPWRITE_H("\r\n", 2);
			ignore_status = true;
		}
	}

	h = (sapi_header_struct *)zend_llist_get_first_ex(&sapi_headers->headers, &pos);
	while (h) {
		if (h->header_len) {
			if (h->header_len > sizeof("Status:") - 1 &&
					strncasecmp(h->header, "Status:", sizeof("Status:") - 1) == 0) {
				if (!ignore_status) {
					ignore_status = true;
					PHPWRITE_H(h->header, h->header_len);
					PHPWRITE_H("\r\n", 2);
				}
			} else if (response_status == 304 && h->header_len > sizeof("Content-Type:") - 1 &&
					strncasecmp(h->header, "Content-Type:", sizeof("Content-Type:") - 1) == 0) {
				/* a 304 carries no body, so no type */
			} else {
				PHPWRITE_H(h->header, h->header_len);
				PHPWRITE_H("\r\n", 2);
			}
		}
		h = (sapi_header_struct *)zend_llist_get_next_ex(&sapi_headers->headers, &pos);
	}
	PHPWRITE_H("\r\n", 2);
	return SAPI_HEADER_SENT_SUCCESSFULLY;
}

static size_t sapi_fpmrs_read_post(char *buffer, size_t count)
{
	size_t remaining = SG(request_info).content_length - SG(read_post_bytes);
	size_t done = 0;

	if (!current) {
		return 0;
	}
	if (remaining < count) {
		count = remaining;
	}
	while (done < count) {
		size_t n = cb.read_body(current->ctx, buffer + done, count - done);
		if (n == 0) {
			break;
		}
		done += n;
	}
	return done;
}

static char *sapi_fpmrs_getenv(const char *name, size_t name_len)
{
	if (!current) {
		return getenv(name);
	}
	return (char *)find_var(name, name_len);
}

static char *sapi_fpmrs_read_cookies(void)
{
	return current ? (char *)current->cookie : NULL;
}

static void (*php_original_import_env)(zval *array_ptr);

static void register_request_vars(zval *array_ptr, bool filter)
{
	int arg = (Z_ARR_P(array_ptr) == Z_ARR(PG(http_globals)[TRACK_VARS_ENV])) ? PARSE_ENV : PARSE_SERVER;
	for (size_t i = 0; current && i < current->vars_len; i++) {
		const fpmrs_var *v = &current->vars[i];
		char *val = (char *)v->value;
		/* as php-fpm, a value ends at its first NUL */
		size_t len = strnlen(v->value, v->value_len);
		size_t new_len = len;
		if (!filter || sapi_module.input_filter(arg, v->name, &val, len, &new_len)) {
			php_register_variable_safe((char *)v->name, val, new_len, array_ptr);
		}
	}
}

/* $_SERVER and $_ENV: the worker's environment, then the request variables (as php-fpm). */
static void fpmrs_import_environment_variables(zval *array_ptr)
{
	if (Z_TYPE(PG(http_globals)[TRACK_VARS_ENV]) == IS_ARRAY &&
			Z_ARR_P(array_ptr) != Z_ARR(PG(http_globals)[TRACK_VARS_ENV]) &&
			zend_hash_num_elements(Z_ARRVAL(PG(http_globals)[TRACK_VARS_ENV])) > 0) {
		zend_array_destroy(Z_ARR_P(array_ptr));
		Z_ARR_P(array_ptr) = zend_array_dup(Z_ARR(PG(http_globals)[TRACK_VARS_ENV]));
		return;
	} else if (Z_TYPE(PG(http_globals)[TRACK_VARS_SERVER]) == IS_ARRAY &&
			Z_ARR_P(array_ptr) != Z_ARR(PG(http_globals)[TRACK_VARS_SERVER]) &&
			zend_hash_num_elements(Z_ARRVAL(PG(http_globals)[TRACK_VARS_SERVER])) > 0) {
		zend_array_destroy(Z_ARR_P(array_ptr));
		Z_ARR_P(array_ptr) = zend_array_dup(Z_ARR(PG(http_globals)[TRACK_VARS_SERVER]));
		return;
	}
	php_original_import_env(array_ptr);
	register_request_vars(array_ptr, true);
}

static void fpmrs_load_environment_variables(zval *array_ptr)
{
	php_original_import_env(array_ptr);
	register_request_vars(array_ptr, false);
}

static void sapi_fpmrs_register_variables(zval *track_vars_array)
{
	php_import_environment_variables(track_vars_array);

	const char *script_name = SG(request_info).request_uri;
	size_t sn_len = script_name ? strlen(script_name) : 0;
	char *php_self;
	size_t self_len;
	if (current && current->fix_pathinfo) {
		const char *path_info = find_var("PATH_INFO", sizeof("PATH_INFO") - 1);
		size_t pi_len = path_info ? strlen(path_info) : 0;
		self_len = sn_len + pi_len;
		php_self = emalloc(self_len + 1);
		if (sn_len) {
			memcpy(php_self, script_name, sn_len);
		}
		if (pi_len) {
			memcpy(php_self + sn_len, path_info, pi_len);
		}
		php_self[self_len] = '\0';
	} else {
		self_len = sn_len;
		php_self = estrndup(script_name ? script_name : "", sn_len);
	}
	char *filtered = php_self;
	if (sapi_module.input_filter(PARSE_SERVER, "PHP_SELF", &filtered, self_len, &self_len)) {
		php_register_variable_safe("PHP_SELF", filtered, self_len, track_vars_array);
	}
	efree(php_self);
}

static void sapi_fpmrs_log_message(const char *message, int syslog_type)
{
	if (!current) {
		fprintf(stderr, "%s\n", message);
		return;
	}
	cb.log_message(current->ctx, message, strlen(message), syslog_type);
}

/* {{{ per-directory configuration: php.ini [PATH=] / [HOST=] sections and .user.ini files.
 * The parsed .user.ini files of a directory are kept for user_ini.cache_ttl seconds,
 * as php-fpm keeps them, so a request re-reads nothing within that time. */
typedef struct {
	time_t expires;
	HashTable settings;
} user_ini_entry;

static HashTable user_ini_cache;
static bool user_ini_cache_ready;

static void user_ini_value_dtor(zval *v)
{
	if (Z_TYPE_P(v) == IS_STRING) {
		zend_string_release_ex(Z_STR_P(v), 1);
	} else if (Z_TYPE_P(v) == IS_ARRAY) {
		zend_hash_destroy(Z_ARRVAL_P(v));
		free(Z_ARR_P(v));
	}
}

static void user_ini_entry_dtor(zval *el)
{
	user_ini_entry *e = Z_PTR_P(el);
	zend_hash_destroy(&e->settings);
	free(e);
}

/* Reads the .user.ini files that apply to `dir` (with its trailing slash): every directory
 * from DOCUMENT_ROOT down to it when it lies inside the document root, else its own. */
static void user_ini_scan(char *dir, size_t dir_len, const char *doc_root, size_t root_len, HashTable *into)
{
	char *resolved = NULL;
	if (dir[0] != '/') {
		resolved = tsrm_realpath(dir, NULL);
		if (!resolved) {
			return;
		}
		dir = resolved;
		dir_len = strlen(dir);
	}
	if (dir_len > root_len && strncmp(dir, doc_root, root_len) == 0) {
		for (char *p = dir + root_len; (p = strchr(p, '/')) != NULL; p++) {
			*p = '\0';
			php_parse_user_ini_file(dir, PG(user_ini_filename), into);
			*p = '/';
		}
	} else if (!(dir_len <= root_len && strncmp(dir, doc_root, dir_len) == 0)) {
		php_parse_user_ini_file(dir, PG(user_ini_filename), into);
	}
	if (resolved) {
		efree(resolved);
	}
}

static void user_ini_activate(char *dir, size_t dir_len, const char *doc_root)
{
	size_t root_len = strlen(doc_root);
	if (root_len > 0 && doc_root[root_len - 1] == '/') {
		root_len--;
	}
	if (!user_ini_cache_ready) {
		zend_hash_init(&user_ini_cache, 8, NULL, user_ini_entry_dtor, 1);
		user_ini_cache_ready = true;
	}
	user_ini_entry *e = zend_hash_str_find_ptr(&user_ini_cache, dir, dir_len);
	if (!e) {
		e = malloc(sizeof(*e));
		if (!e) {
			return;
		}
		e->expires = 0;
		zend_hash_init(&e->settings, 0, NULL, user_ini_value_dtor, 1);
		zend_hash_str_update_ptr(&user_ini_cache, dir, dir_len, e);
	}
	time_t now = (time_t)sapi_get_request_time();
	if (now > e->expires) {
		zend_hash_clean(&e->settings);
		user_ini_scan(dir, dir_len, doc_root, root_len, &e->settings);
		e->expires = now + PG(user_ini_cache_ttl);
	}
	php_ini_activate_config(&e->settings, PHP_INI_PERDIR, PHP_INI_STAGE_HTACCESS);
}

/* SAPI activate: applies the configuration of the script's host and directory. */
static int sapi_fpmrs_activate(void)
{
	const char *script = SG(request_info).path_translated;
	if (!current || !script) {
		return SUCCESS;
	}
	if (php_ini_has_per_host_config()) {
		const char *host = find_var("SERVER_NAME", sizeof("SERVER_NAME") - 1);
		if (host) {
			size_t len = strlen(host);
			char *lower = estrndup(host, len);
			zend_str_tolower(lower, len);
			php_ini_activate_per_host_config(lower, len);
			efree(lower);
		}
	}
	bool user_ini = PG(user_ini_filename) && *PG(user_ini_filename);
	if (!php_ini_has_per_dir_config() && !user_ini) {
		return SUCCESS;
	}
	/* the script's directory, with a trailing slash */
	size_t len = strlen(script);
	char *dir = emalloc(len + 2);
	memcpy(dir, script, len + 1);
	size_t dir_len = zend_dirname(dir, len);
	if (dir_len == 0 || dir[dir_len - 1] != '/') {
		dir[dir_len++] = '/';
	}
	dir[dir_len] = '\0';
	php_ini_activate_per_dir_config(dir, dir_len);
	const char *doc_root = user_ini ? find_var("DOCUMENT_ROOT", sizeof("DOCUMENT_ROOT") - 1) : NULL;
	if (doc_root) {
		user_ini_activate(dir, dir_len, doc_root);
	}
	efree(dir);
	return SUCCESS;
}
/* }}} */

static int sapi_fpmrs_deactivate(void)
{
	return SUCCESS;
}

/* {{{ functions php-fpm gives scripts */
ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_fastcgi_finish_request, 0, 0, _IS_BOOL, 0)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_apache_request_headers, 0, 0, IS_ARRAY, 0)
ZEND_END_ARG_INFO()
ZEND_BEGIN_ARG_WITH_RETURN_TYPE_MASK_EX(arginfo_fpm_get_status, 0, 0, MAY_BE_ARRAY|MAY_BE_FALSE)
ZEND_END_ARG_INFO()

PHP_FUNCTION(fastcgi_finish_request)
{
	ZEND_PARSE_PARAMETERS_NONE();
	if (current && SG(server_context)) {
		php_output_end_all();
		php_header();
		if (cb.finish_request(current->ctx)) {
			RETURN_TRUE;
		}
	}
	RETURN_FALSE;
}

PHP_FUNCTION(apache_request_headers)
{
	ZEND_PARSE_PARAMETERS_NONE();
	array_init(return_value);
	for (size_t i = 0; current && i < current->vars_len; i++) {
		const fpmrs_var *v = &current->vars[i];
		sapi_add_request_header((char *)v->name, (unsigned int)v->name_len, (char *)v->value,
				(unsigned int)v->value_len, return_value);
	}
}

PHP_FUNCTION(fpm_get_status)
{
	char small[8192];
	char *buf = small;
	size_t len;
	ZEND_PARSE_PARAMETERS_NONE();
	if (!current || !cb.status_json) {
		RETURN_FALSE;
	}
	/* PHP's JSON scanner reads up to a NUL after the text: keep a byte for it */
	len = cb.status_json(current->ctx, small, sizeof(small) - 1);
	if (len == 0) {
		RETURN_FALSE;
	}
	if (len > sizeof(small) - 1) {
		size_t again;
		buf = emalloc(len + 1);
		again = cb.status_json(current->ctx, buf, len);
		if (again == 0 || again > len) {
			efree(buf);
			RETURN_FALSE;
		}
		len = again;
	}
	buf[len] = '\0';
	/* the same keys and types as php-fpm's, decoded by PHP's own JSON parser */
	if (php_json_decode_ex(return_value, buf, len, PHP_JSON_OBJECT_AS_ARRAY, 64) != SUCCESS) {
		zval_ptr_dtor(return_value);
		ZVAL_FALSE(return_value);
	}
	if (buf != small) {
		efree(buf);
	}
}

static const zend_function_entry fpmrs_functions[] = {
	PHP_FE(fastcgi_finish_request, arginfo_fastcgi_finish_request)
	PHP_FE(apache_request_headers, arginfo_apache_request_headers)
	PHP_FALIAS(getallheaders, apache_request_headers, arginfo_apache_request_headers)
	PHP_FE(fpm_get_status, arginfo_fpm_get_status)
	PHP_FE_END
};
/* }}} */

PHP_INI_BEGIN()
	STD_PHP_INI_BOOLEAN("cgi.rfc2616_headers", "0", PHP_INI_ALL, OnUpdateBool, rfc2616_headers, fpmrs_cgi_globals, cgi_globals)
	STD_PHP_INI_BOOLEAN("cgi.nph", "0", PHP_INI_ALL, OnUpdateBool, nph, fpmrs_cgi_globals, cgi_globals)
	STD_PHP_INI_BOOLEAN("cgi.fix_pathinfo", "1", PHP_INI_SYSTEM, OnUpdateBool, fix_pathinfo, fpmrs_cgi_globals, cgi_globals)
	STD_PHP_INI_BOOLEAN("cgi.discard_path", "0", PHP_INI_SYSTEM, OnUpdateBool, discard_path, fpmrs_cgi_globals, cgi_globals)
	STD_PHP_INI_BOOLEAN("fastcgi.script_path_encoded", "1", PHP_INI_SYSTEM, OnUpdateBool, script_path_encoded, fpmrs_cgi_globals, cgi_globals)
	STD_PHP_INI_BOOLEAN("fastcgi.logging", "1", PHP_INI_SYSTEM, OnUpdateBool, logging, fpmrs_cgi_globals, cgi_globals)
	STD_PHP_INI_ENTRY("fastcgi.error_header", NULL, PHP_INI_SYSTEM, OnUpdateString, error_header, fpmrs_cgi_globals, cgi_globals)
	STD_PHP_INI_ENTRY("fpm.config", NULL, PHP_INI_SYSTEM, OnUpdateString, fpm_config, fpmrs_cgi_globals, cgi_globals)
PHP_INI_END()

static PHP_MINIT_FUNCTION(cgi)
{
	cgi_globals.fix_pathinfo = 1;
	cgi_globals.script_path_encoded = 1;
	cgi_globals.logging = 1;
	REGISTER_INI_ENTRIES();
	return SUCCESS;
}

static PHP_MSHUTDOWN_FUNCTION(cgi)
{
	UNREGISTER_INI_ENTRIES();
	return SUCCESS;
}

static PHP_MINFO_FUNCTION(cgi)
{
	php_info_print_table_start();
	php_info_print_table_row(2, "php-fpm", "active");
	php_info_print_table_end();
	DISPLAY_INI_ENTRIES();
}

/* Named "cgi-fcgi" as in php-fpm, so `php -m` style listings and extension checks match. */
static zend_module_entry fpmrs_module_entry = {
	STANDARD_MODULE_HEADER,
	"cgi-fcgi",
	fpmrs_functions,
	PHP_MINIT(cgi),
	PHP_MSHUTDOWN(cgi),
	NULL,
	NULL,
	PHP_MINFO(cgi),
	PHP_VERSION,
	STANDARD_MODULE_PROPERTIES
};

static int sapi_fpmrs_startup(sapi_module_struct *module)
{
	return php_module_startup(module, &fpmrs_module_entry);
}

/* "fpm-fcgi": opcache only enables itself for a fixed list of SAPI names. */
static sapi_module_struct fpmrs_sapi_module = {
	"fpm-fcgi",
	"FPM/FastCGI",
	sapi_fpmrs_startup,
	php_module_shutdown_wrapper,
	sapi_fpmrs_activate,
	sapi_fpmrs_deactivate,
	sapi_fpmrs_ub_write,
	sapi_fpmrs_flush,
	NULL,                       /* get uid */
	sapi_fpmrs_getenv,
	php_error,
	NULL,                       /* header handler */
	sapi_fpmrs_send_headers,
	NULL,                       /* send header */
	sapi_fpmrs_read_post,
	sapi_fpmrs_read_cookies,
	sapi_fpmrs_register_variables,
	sapi_fpmrs_log_message,
	NULL,                       /* get request time */
	NULL,                       /* child terminate */
	STANDARD_SAPI_MODULE_PROPERTIES
};

static bool started;

int fpmrs_startup(const fpmrs_startup_opts *opts)
{
	cb = opts->callbacks;
	zend_signal_startup();
	sapi_startup(&fpmrs_sapi_module);
	fpmrs_sapi_module.php_ini_ignore_cwd = 1;
	fpmrs_sapi_module.php_ini_ignore = opts->ini_ignore;
	fpmrs_sapi_module.php_ini_path_override = opts->ini_path_override ? strdup(opts->ini_path_override) : NULL;
	fpmrs_sapi_module.ini_entries = opts->ini_entries ? strdup(opts->ini_entries) : NULL;
	fpmrs_sapi_module.executable_location = NULL;
	if (fpmrs_sapi_module.startup(&fpmrs_sapi_module) == FAILURE) {
		return -1;
	}
	php_original_import_env = php_import_environment_variables;
	php_import_environment_variables = fpmrs_import_environment_variables;
	php_load_environment_variables = fpmrs_load_environment_variables;
	started = true;
	return 0;
}

void fpmrs_shutdown(void)
{
	if (started) {
		if (user_ini_cache_ready) {
			zend_hash_destroy(&user_ini_cache);
			user_ini_cache_ready = false;
		}
		php_module_shutdown();
		sapi_shutdown();
		started = false;
	}
}

void fpmrs_child_init(void)
{
	/* a forked child must set up PHP's signal bookkeeping again, or its handlers are lost */
	zend_signal_startup();
}

int fpmrs_realpath_exists(const char *path)
{
	char resolved[MAXPATHLEN];
	/* PHP's realpath cache (realpath_cache_size/_ttl), as php-fpm resolves
	 * SCRIPT_FILENAME: a cached path costs no system call. */
	return tsrm_realpath(path, resolved) != NULL;
}

static bool is_locked(const char *name)
{
	for (size_t i = 0; i < locked_len; i++) {
		if (strcmp(locked_names[i], name) == 0) {
			return true;
		}
	}
	return false;
}

/* php_value / php_admin_value of the pool: change the master value, as php-fpm does. */
int fpmrs_ini_apply_master(const char *name, const char *value, int admin)
{
	size_t name_len = strlen(name);
	zend_ini_entry *entry;

	if (strcmp(name, "extension") == 0 && *value) {
		zval zv;
		php_dl((char *)value, MODULE_PERSISTENT, &zv, 1);
		return Z_TYPE(zv) == IS_TRUE ? 0 : -1;
	}
	entry = zend_hash_str_find_ptr(EG(ini_directives), name, name_len);
	if (!entry) {
		return -1;
	}
	zend_string *dup = zend_string_init(value, strlen(value), 1);
	if (!entry->on_modify || entry->on_modify(entry, dup, entry->mh_arg1, entry->mh_arg2,
			entry->mh_arg3, PHP_INI_STAGE_ACTIVATE) == SUCCESS) {
		entry->value = dup;
		entry->modifiable = admin ? ZEND_INI_SYSTEM : ZEND_INI_USER;
	} else {
		zend_string_release(dup);
		return -1;
	}
	if (admin && locked_len < FPMRS_MAX_LOCKED) {
		locked_names[locked_len++] = strdup(name);
	}
	if (strcmp(name, "disable_functions") == 0 && *value) {
		zend_disable_functions(value);
	}
	return 0;
}

int fpmrs_ini_bool(const char *name)
{
	if (strcmp(name, "cgi.fix_pathinfo") == 0) {
		return cgi_globals.fix_pathinfo;
	}
	if (strcmp(name, "cgi.discard_path") == 0) {
		return cgi_globals.discard_path;
	}
	if (strcmp(name, "fastcgi.logging") == 0) {
		return cgi_globals.logging;
	}
	return (int)zend_ini_long((char *)name, strlen(name), 0);
}

static void request_ini_parser(zval *arg1, zval *arg2, zval *arg3, int callback_type, void *arg)
{
	(void)arg3;
	bool admin = arg != NULL && *(const bool *)arg;
	if (callback_type != ZEND_INI_PARSER_ENTRY || !arg1 || !arg2) {
		php_log_err("Passing INI directive through FastCGI: only classic entries are allowed");
		return;
	}
	const char *key = Z_STRVAL_P(arg1);
	if (is_locked(key)) {
		php_log_err_with_severity("Passing INI directive through FastCGI: refusing to change php_admin_value", LOG_NOTICE);
		return;
	}
	/* Recorded as a request modification: restored at request end, so one request's
	 * PHP_VALUE never leaks into the next one (php-fpm keeps it for the worker's life). */
	zend_string *name = zend_string_init(key, Z_STRLEN_P(arg1), 0);
	zend_string *value = zend_string_init(Z_STRVAL_P(arg2), Z_STRLEN_P(arg2), 0);
	if (zend_alter_ini_entry_ex(name, value, ZEND_INI_SYSTEM, ZEND_INI_STAGE_RUNTIME, 1) == FAILURE) {
		char msg[512];
		snprintf(msg, sizeof(msg), "Passing INI directive through FastCGI: unable to set '%s'", key);
		php_log_err(msg);
	} else if (admin) {
		/* locked against ini_set() for this request; the request's end restores it */
		zend_ini_entry *entry = zend_hash_find_ptr(EG(ini_directives), name);
		if (entry) {
			entry->modifiable = ZEND_INI_SYSTEM;
		}
	}
	zend_string_release(name);
	zend_string_release(value);
}

static void apply_request_ini(const char *ini, bool admin)
{
	if (!ini || !*ini) {
		return;
	}
	size_t len = strlen(ini);
	char *tmp = emalloc(len + 2);
	memcpy(tmp, ini, len);
	tmp[len] = '\n';
	tmp[len + 1] = '\0';
	zend_parse_ini_string(tmp, 1, ZEND_INI_SCANNER_NORMAL, request_ini_parser, &admin);
	efree(tmp);
}

static bool is_valid_path(const char *path)
{
	const char *p = strstr(path, "..");
	if (!p) {
		return true;
	}
	if ((p == path || p[-1] == '/') && (p[2] == 0 || p[2] == '/')) {
		return false;
	}
	while ((p = strstr(p + 1, "..")) != NULL) {
		if (p[-1] == '/' && (p[2] == 0 || p[2] == '/')) {
			return false;
		}
	}
	return true;
}

static void puts_status(int status, const char *text)
{
	zend_try {
		SG(sapi_headers).http_response_code = status;
		PUTS(text);
	} zend_catch {
	} zend_end_try();
}

int fpmrs_execute(const fpmrs_request *req, fpmrs_result *out)
{
	zend_file_handle file_handle;
	bool have_handle = false;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	current = req;
	log_started = false;
	SG(server_context) = req->ctx;
	SG(request_info).request_method = req->request_method;
	SG(request_info).query_string = (char *)req->query_string;
	SG(request_info).request_uri = (char *)req->request_uri;
	SG(request_info).content_type = req->content_type ? req->content_type : "";
	SG(request_info).content_length = req->content_length;
	SG(request_info).proto_num = 1000;
	SG(request_info).path_translated = NULL;
	SG(sapi_headers).http_response_code = 200;
	if (req->script_filename && is_valid_path(req->script_filename)) {
		SG(request_info).path_translated = estrdup(req->script_filename);
	}
	php_handle_auth_data(req->authorization);

	if (php_request_startup() == FAILURE) {
		current = NULL;
		SG(server_context) = NULL;
		return -1;
	}
#ifdef ZEND_SIGNALS
	/* The first request installed PHP's deferring handlers, and its deactivation leaves
	 * them in place: asking the kernel again on every request (7 sigaction calls) finds
	 * them there and changes nothing. */
	SIGG(reset) = 0;
#endif
	/* Inside the request, like ini_set(): the request's shutdown restores them. */
	zend_try {
		apply_request_ini(req->php_value, false);
		apply_request_ini(req->php_admin_value, true);
	} zend_end_try();

	zend_first_try {
		if (!SG(request_info).request_method) {
			/* not an HTTP request over FastCGI: nothing to run */
		} else if (!SG(request_info).path_translated) {
			puts_status(404, "File not found.\n");
		} else if (req->access_denied) {
			puts_status(403, "Access denied.\n");
		} else {
			char *primary = estrdup(SG(request_info).path_translated);
			if (php_fopen_primary_script(&file_handle) == FAILURE) {
				out->open_failed_errno = errno ? errno : ENOENT;
				if (errno == EACCES) {
					puts_status(403, "Access denied.\n");
				} else {
					puts_status(404, "No input file specified.\n");
				}
			} else {
				have_handle = true;
				EG(exit_status) = 0;
				php_execute_script(&file_handle);
			}
			efree(primary);
		}
	} zend_end_try();

	if (have_handle && !file_handle.in_list) {
		zend_destroy_file_handle(&file_handle);
	}
	if (EG(exit_status) == 255 && cgi_globals.error_header && *cgi_globals.error_header && !SG(headers_sent)) {
		sapi_header_line ctr = {0};
		ctr.line = cgi_globals.error_header;
		ctr.line_len = strlen(cgi_globals.error_header);
		sapi_header_op(SAPI_HEADER_REPLACE, &ctr);
	}
	out->exit_status = EG(exit_status);
	out->peak_memory = zend_memory_peak_usage(1);
	if (SG(request_info).path_translated) {
		efree(SG(request_info).path_translated);
		SG(request_info).path_translated = NULL;
	}
	php_request_shutdown(NULL);
	out->http_status = SG(sapi_headers).http_response_code;
	current = NULL;
	SG(server_context) = NULL;
	return rc;
}

static int run_outside_request(void (*fn)(void))
{
	if (php_request_startup() == FAILURE) {
		return -1;
	}
	SG(headers_sent) = 1;
	SG(request_info).no_headers = 1;
	zend_try {
		fn();
	} zend_end_try();
	php_request_shutdown(NULL);
	return 0;
}

static void print_info(void) { php_print_info(PHP_INFO_ALL); }

static int module_name_cmp(Bucket *f, Bucket *s)
{
	return strcasecmp(((zend_module_entry *)Z_PTR(f->val))->name, ((zend_module_entry *)Z_PTR(s->val))->name);
}

static void print_extension(zend_extension *ext) { php_printf("%s\n", ext->name); }

static void print_modules(void)
{
	HashTable sorted;
	zend_module_entry *module;
	zend_hash_init(&sorted, 50, NULL, NULL, 1);
	zend_hash_copy(&sorted, &module_registry, NULL);
	zend_hash_sort(&sorted, module_name_cmp, 0);
	php_printf("[PHP Modules]\n");
	ZEND_HASH_MAP_FOREACH_PTR(&sorted, module) {
		php_printf("%s\n", module->name);
	} ZEND_HASH_FOREACH_END();
	zend_hash_destroy(&sorted);
	php_printf("\n[Zend Modules]\n");
	zend_llist_apply(&zend_extensions, (llist_apply_func_t)print_extension);
	php_printf("\n");
}

static void print_version(void)
{
	php_printf("PHP %s (%s) (built: %s %s)\nCopyright (c) The PHP Group\n%s",
			PHP_VERSION, fpmrs_sapi_module.name, __DATE__, __TIME__, get_zend_version());
}

int fpmrs_print_info(void)
{
	sapi_module.phpinfo_as_text = 1;
	return run_outside_request(print_info);
}

int fpmrs_print_modules(void) { return run_outside_request(print_modules); }

int fpmrs_print_version(void) { return run_outside_request(print_version); }
