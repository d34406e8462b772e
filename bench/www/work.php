<?php
// Real work in a request: build a structure, JSON round trip, hash it.
$items = [];
for ($i = 0; $i < 200; $i++) {
    $items[] = ['id' => $i, 'name' => "item-$i", 'tags' => ['a', 'b', (string)($i % 7)], 'price' => $i * 1.25];
}
$json = json_encode($items);
$back = json_decode($json, true);
$h = '';
foreach ($back as $item) {
    $h = hash('sha256', $h . $item['name'] . $item['price']);
}
header('Content-Type: application/json');
echo json_encode(['count' => count($back), 'bytes' => strlen($json), 'md5' => md5($json), 'chain' => $h]);
