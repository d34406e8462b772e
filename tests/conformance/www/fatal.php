<?php
echo "partial\n";
undefined_function_xyz();
echo "never\n";
