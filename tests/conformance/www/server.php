<?php
// Every $_SERVER entry except the clock.
$s = $_SERVER;
unset($s['REQUEST_TIME'], $s['REQUEST_TIME_FLOAT']);
ksort($s);
foreach ($s as $k => $v) {
    echo $k, '=', is_string($v) ? $v : var_export($v, true), "\n";
}
