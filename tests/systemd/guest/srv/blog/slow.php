<?php
// a long request in flight during reloads: it must complete (the old worker is
// never interrupted) while fast requests are served by the new generation
sleep(2);
echo "slow done\n";
