<?php
echo var_export(ignore_user_abort(), true), ' ';
echo var_export(ignore_user_abort(true), true), ' ';
echo var_export(ignore_user_abort(), true), ' ', connection_status(), ' ', connection_aborted(), "\n";
