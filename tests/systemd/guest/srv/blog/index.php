<?php echo "hello from pool blog, ", PHP_SAPI, "\n";
