<?php
$a = getallheaders();
ksort($a);
var_export($a);
echo "\n", var_export(apache_request_headers() == getallheaders(), true), "\n";
