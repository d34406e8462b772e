<?php
echo php_sapi_name(), ' ', PHP_SAPI, ' ', PHP_VERSION === phpversion() ? 'v' : 'x', "\n";
echo function_exists('fastcgi_finish_request') ? 'ffr' : '-', ' ', function_exists('fpm_get_status') ? 'fgs' : '-', "\n";
