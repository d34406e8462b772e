<?php
undefined_function_xyz();
