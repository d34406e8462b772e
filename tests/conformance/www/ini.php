<?php
foreach (['memory_limit', 'opcache.enable', 'opcache.enable_cli', 'upload_tmp_dir', 'display_errors',
          'log_errors', 'error_reporting', 'output_buffering', 'post_max_size', 'upload_max_filesize',
          'max_execution_time', 'cgi.fix_pathinfo', 'session.save_path', 'short_open_tag',
          'error_log', 'date.timezone', 'include_path', 'html_errors', 'expose_php',
          'request_order', 'variables_order', 'implicit_flush', 'zlib.output_compression'] as $k) {
    echo $k, '=', var_export(ini_get($k), true), "\n";
}
echo 'opcache=', var_export(extension_loaded('Zend OPcache'), true), "\n";
echo 'php_ini=', php_ini_loaded_file(), "\n";
