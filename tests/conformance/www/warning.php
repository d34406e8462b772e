<?php
echo $undefined_var ?? '', "a\n";
echo $really_undefined, "b\n";
$x = end(explode(',', 'a,b'));
trigger_error('user notice', E_USER_NOTICE);
trigger_error('user warning', E_USER_WARNING);
trigger_error('user deprecated', E_USER_DEPRECATED);
echo "done $x\n";
