<?php
header('Content-Type: application/octet-stream');
for ($i = 0; $i < 4; $i++) { for ($b = 0; $b < 256; $b++) { echo chr($b); } }
echo "\0\r\n\r\n\0";
