<?php
foreach ($_COOKIE as $k => $v) {
    echo $k, ' len=', strlen(is_string($v) ? $v : serialize($v)), ' md5=', md5(is_string($v) ? $v : serialize($v)),
        strlen(is_string($v) ? $v : '') < 100 ? ' ' . var_export($v, true) : '', "\n";
}
