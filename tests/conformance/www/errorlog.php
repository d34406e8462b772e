<?php
error_log('from script');
error_log("multi\nline");
echo "logged\n";
