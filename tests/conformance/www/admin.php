<?php
echo 'memory_limit=', ini_get('memory_limit'), "\n";
echo 'set=', var_export(ini_set('memory_limit', '64M'), true), "\n";
echo 'after=', ini_get('memory_limit'), "\n";
echo 'precision=', ini_get('precision'), "\n";
