<?php
header('Content-Type: application/json');
echo json_encode(['a' => 1, 'b' => [1.5, true, null], 'u' => "é✓", 's' => '</tag>'], JSON_PRETTY_PRINT), "\n";
echo json_encode("é", JSON_UNESCAPED_UNICODE), json_encode(0.1 + 0.2), "\n";
