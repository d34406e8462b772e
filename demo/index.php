<?php
// The php-fpm-rs demo page: what is serving this request.
$opcache = function_exists('opcache_get_status') ? opcache_get_status(false) : false;
$rows = [
    'PHP version' => PHP_VERSION,
    'SAPI' => PHP_SAPI,
    'Worker pid' => getmypid(),
    'Worker user' => function_exists('posix_getpwuid') ? posix_getpwuid(posix_geteuid())['name'] : '?',
    'OPcache' => $opcache && $opcache['opcache_enabled'] ? 'enabled, ' . $opcache['opcache_statistics']['hits'] . ' hits' : 'off',
    'Script' => $_SERVER['SCRIPT_FILENAME'],
    'Request' => $_SERVER['REQUEST_METHOD'] . ' ' . $_SERVER['REQUEST_URI'],
    'Server software' => $_SERVER['SERVER_SOFTWARE'] ?? '?',
];
?><!doctype html>
<html><head><meta charset="utf-8"><title>php-fpm-rs demo</title>
<style>body{font-family:sans-serif;max-width:44em;margin:2em auto}td{padding:.2em 1em}th{text-align:left}</style></head>
<body>
<h1>php-fpm-rs is serving PHP</h1>
<table>
<?php foreach ($rows as $k => $v): ?>
<tr><th><?= htmlspecialchars($k) ?></th><td><?= htmlspecialchars((string)$v) ?></td></tr>
<?php endforeach; ?>
</table>
<h2>Try a form</h2>
<form method="post"><input name="name" placeholder="your name"> <button>Send</button></form>
<?php if (isset($_POST['name'])): ?><p>Hello, <?= htmlspecialchars($_POST['name']) ?>!</p><?php endif; ?>
</body></html>
