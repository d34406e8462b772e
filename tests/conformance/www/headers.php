<?php
switch ($_GET['c'] ?? '') {
    case 'basic':
        header('X-Test: yes');
        header('Content-Type: text/plain; charset=utf-8');
        echo "hello\n";
        break;
    case 'code':
        http_response_code(418);
        echo http_response_code(), "\n";
        break;
    case 'status':
        header('Status: 503 Service Unavailable');
        echo "down\n";
        break;
    case 'location':
        header('Location: /elsewhere?x=1');
        break;
    case 'location201':
        header('Location: /created', true, 201);
        break;
    case 'notmodified':
        http_response_code(304);
        break;
    case 'cookie':
        setcookie('plain', 'a b;c', ['expires' => 1, 'path' => '/p', 'domain' => 'example.test',
            'secure' => true, 'httponly' => true, 'samesite' => 'Lax']);
        setrawcookie('raw', 'x%20y');
        setcookie('gone', '');
        echo "cookies\n";
        break;
    case 'list':
        header('X-A: 1');
        header('X-B: 2');
        header_remove('X-B');
        print_r(headers_list());
        break;
    case 'dup':
        header('X-A: 1');
        header('X-A: 2', false);
        header('X-A: 3', false);
        break;
    case 'replace':
        header('X-A: 1');
        header('X-A: 2');
        break;
    case 'removeall':
        header('X-A: 1');
        header_remove();
        echo "none\n";
        break;
    case 'sent':
        echo "x";
        flush();
        var_export(headers_sent());
        header('X-Late: 1');
        break;
    case 'protocol':
        header('HTTP/1.1 404 Nope');
        echo http_response_code(), "\n";
        break;
}
