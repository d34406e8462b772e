<?php
// an E_WARNING: must reach the journal with PRIORITY=4 and the script's name
echo $undefined_on_purpose;
echo "warned\n";
