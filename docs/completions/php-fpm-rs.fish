complete -c php-fpm-rs -s c -l php-ini -d 'Look for php.ini file in this directory (or use this file)' -r -F
complete -c php-fpm-rs -s d -l define -d 'Define INI entry foo with value \'bar\'' -r
complete -c php-fpm-rs -s p -l prefix -d 'Specify alternative prefix path (relative paths in the config start there)' -r -f -a "(__fish_complete_directories)"
complete -c php-fpm-rs -s g -l pid -d 'Specify the PID file location' -r -F
complete -c php-fpm-rs -s y -l fpm-config -d 'Specify alternative path to the FastCGI process manager config file' -r -F
complete -c php-fpm-rs -l pool-config -d 'Read the pools from this file, after the [global] of the main file (-y), which then must define no pool (php-fpm-rs only; what php-fpm@NAME.service passes)' -r -F
complete -c php-fpm-rs -s n -l no-php-ini -d 'No php.ini file will be used'
complete -c php-fpm-rs -s e -l profile-info -d 'Generate extended information for debugger/profiler (accepted, no effect)'
complete -c php-fpm-rs -s i -l info -d 'PHP information'
complete -c php-fpm-rs -s m -l modules -d 'Show compiled in modules'
complete -c php-fpm-rs -s v -l version -d 'Version number'
complete -c php-fpm-rs -s t -l test -d 'Test FPM configuration and exit (twice: also print it)'
complete -c php-fpm-rs -s D -l daemonize -d 'Force to run in background, and ignore daemonize option from config file'
complete -c php-fpm-rs -s F -l nodaemonize -d 'Force to stay in foreground, and ignore daemonize option from config file'
complete -c php-fpm-rs -s O -l force-stderr -d 'Force output to stderr in nodaemonize even if stderr is not a TTY'
complete -c php-fpm-rs -s R -l allow-to-run-as-root -d 'Allow pool to run as root (disabled by default)'
complete -c php-fpm-rs -s h -l help -d 'Print help'
