<?php
$in = file_get_contents('php://input');
echo strlen($in), ' ', md5($in), "\n";
$again = file_get_contents('php://input');
echo 'reread=', var_export($again === $in, true), "\n";
echo 'post=', count($_POST), "\n";
