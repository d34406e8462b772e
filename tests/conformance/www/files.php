<?php
ksort($_FILES);
foreach ($_FILES as $field => $f) {
    foreach ((array) $f['name'] as $i => $_) {
        $pick = fn($key) => is_array($f[$key]) ? $f[$key][$i] : $f[$key];
        $tmp = $pick('tmp_name');
        echo $field, '[', $i, '] name=', $pick('name'), ' full_path=', $pick('full_path'), ' type=', $pick('type'),
            ' size=', $pick('size'), ' error=', $pick('error'),
            ' md5=', $tmp !== '' ? md5_file($tmp) : '-', ' uploaded=', var_export(is_uploaded_file($tmp), true), "\n";
    }
}
var_export($_POST);
