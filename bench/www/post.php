<?php
// The request body (1 MiB in the benchmark), read whole and summarised.
$body = file_get_contents('php://input');
echo strlen($body), ' ', crc32($body), "\n";
