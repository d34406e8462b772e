<?php
// Sanity check run once per server before measuring: same SAPI, opcache on, JIT off.
$s = function_exists('opcache_get_status') ? opcache_get_status(false) : false;
header('Content-Type: text/plain');
printf("sapi=%s php=%s opcache=%s jit=%s\n", PHP_SAPI, PHP_VERSION,
    ($s && $s['opcache_enabled']) ? 'on' : 'off',
    ($s && !empty($s['jit']['on'])) ? 'on' : 'off');
