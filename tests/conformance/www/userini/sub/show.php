<?php
foreach (['precision', 'highlight.comment', 'serialize_precision', 'opcache.memory_consumption'] as $k) {
    echo $k, '=', ini_get($k), "\n";
}
echo 'pi=', M_PI, "\n";
