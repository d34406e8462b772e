<?php
function thrower() { throw new RuntimeException('boom'); }
thrower();
