<?php
echo $_SERVER['REQUEST_METHOD'], ' ', $_GET['i'] ?? '-', "\n";
