<?php
foreach (['highlight.comment', 'serialize_precision'] as $k) {
    echo $k, '=', ini_get($k), "\n";
}
