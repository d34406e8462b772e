<?php
echo "before\n";
switch ($_GET['c'] ?? '') {
    case 'plain': exit();
    case 'code': exit(3);
    case 'msg': exit("bye\n");
    case 'handler':
        ob_start(function ($buf) { echo "ignored"; exit("in handler\n"); });
        echo "buffered\n";
        ob_end_flush();
        echo "not reached?\n";
        break;
    case 'shutdown':
        register_shutdown_function(function () { echo "shutdown ran\n"; });
        exit(0);
}
echo "after\n";
