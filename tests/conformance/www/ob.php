<?php
echo "start\n";
ob_start();
echo "buffered\n";
$b = ob_get_clean();
ob_start(fn($s) => strtoupper($s));
echo "upper ", ob_get_level(), "\n";
ob_end_flush();
echo strrev($b);
flush();
echo "after flush\n";
ob_start();
echo "left open at end\n";
