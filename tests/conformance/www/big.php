<?php
// 20 MiB in uneven echoes, deterministic content.
$line = '';
for ($i = 0; $i < 256; $i++) { $line .= chr($i); }
$total = 20 * 1024 * 1024;
$sent = 0;
$sizes = [1, 100, 4095, 4096, 65535, 65536, 70000, 1000000];
$k = 0;
while ($sent < $total) {
    $n = min($sizes[$k++ % count($sizes)], $total - $sent);
    echo substr(str_repeat($line, intdiv($n, 256) + 2), $sent % 256, $n);
    $sent += $n;
}
