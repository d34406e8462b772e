<?php
echo "finished early\n";
fastcgi_finish_request();
sleep(2);
echo "lost\n";
