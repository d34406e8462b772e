<?php
// Path-related $_SERVER keys, "(unset)" when absent.
foreach (['SCRIPT_FILENAME', 'SCRIPT_NAME', 'PATH_INFO', 'PATH_TRANSLATED', 'DOCUMENT_ROOT',
          'REQUEST_URI', 'PHP_SELF', 'ORIG_PATH_INFO', 'ORIG_PATH_TRANSLATED', 'ORIG_SCRIPT_NAME',
          'ORIG_SCRIPT_FILENAME', 'QUERY_STRING', 'HTTPS', 'REMOTE_ADDR', 'REMOTE_PORT'] as $k) {
    echo $k, '=', array_key_exists($k, $_SERVER) ? var_export($_SERVER[$k], true) : '(unset)', "\n";
}
echo '__FILE__=', __FILE__, "\n";
