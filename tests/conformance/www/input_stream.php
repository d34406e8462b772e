<?php
// Reads php://input in 1 MiB slices so a 50 MiB body fits memory_limit.
$h = fopen('php://input', 'rb');
$ctx = hash_init('md5');
$len = 0;
while (!feof($h)) {
    $chunk = fread($h, 1 << 20);
    if ($chunk === false || $chunk === '') { break; }
    $len += strlen($chunk);
    hash_update($ctx, $chunk);
}
echo $len, ' ', hash_final($ctx), "\n";
