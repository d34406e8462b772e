<?php
echo 'display_errors=', var_export(ini_get('display_errors'), true), "\n";
echo 'precision=', var_export(ini_get('precision'), true), "\n";
echo $undefined_for_display;
echo "end\n";
