<?php
session_start();
$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
echo session_name(), ' len=', strlen(session_id()), ' n=', $_SESSION['n'], ' status=', session_status(), "\n";
