#!/bin/bash
# The package's life in a booted Debian 12 (systemd as PID 1), run INSIDE the guest by
# tests/packages_install.rs (`make packages-test`): install, socket activation through
# nginx, journal, remove, purge.
#
#   install-in-guest.sh /path/to/php-fpm-rs_VERSION_ARCH.deb
#
# The guest must be a tree of Debian packages only, with libphp8.2-embed (at least
# the version the .deb was built against: bookworm-security's, as on the build host),
# nginx-light and curl already installed (it runs without network). Prints one
# "ok"/"FAIL" line per check ("info" lines record what is not checked) and exits 1 if
# any failed. Every wait is bounded.
set -u
DEB=${1:?usage: install-in-guest.sh PACKAGE.deb}
failed=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failed=1; }
check() { local what=$1; shift; if "$@" >/dev/null 2>&1; then ok "$what"; else fail "$what"; fi; }
active_php_units() { systemctl list-units --no-legend --state=active 'php-fpm*' | grep -c . ; }
# until SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds, for at most SECONDS
until_ok() { local end=$(( $(date +%s) + $1 )); shift
  while ! "$@" >/dev/null 2>&1; do [ "$(date +%s)" -lt "$end" ] || return 1; sleep 0.1; done; }

# ---- install: files in place, nothing enabled or started
apt-get install -y "$DEB" > /tmp/install.log 2>&1 || { cat /tmp/install.log; fail "apt-get install"; exit 1; }
ok "apt-get install $(basename "$DEB")"
check "php-fpm.conf is a conffile" grep -qx /etc/php-fpm-rs/php-fpm.conf /var/lib/dpkg/info/php-fpm-rs.conffiles
check "www.conf.example is a conffile" grep -qx /etc/php-fpm-rs/pool.d/www.conf.example /var/lib/dpkg/info/php-fpm-rs.conffiles
check "units installed" test -f /lib/systemd/system/php-fpm@.socket -a -f /lib/systemd/system/php-fpm@.service
check "no php-fpm unit active after install" test "$(active_php_units)" = 0
check "no instance enabled" sh -c '! ls /etc/systemd/system/*.wants/php-fpm@* 2>/dev/null | grep -q .'
check "/run/php-fpm exists (tmpfiles.d)" test -d /run/php-fpm
check "man pages" test -f /usr/share/man/man8/php-fpm-rs.8.gz -a -f /usr/share/man/man5/php-fpm-rs.conf.5.gz
# libphp is found by the file name the package records, without ldconfig's link
rm -f /usr/lib/libphp.so /lib/libphp.so
check "php-fpm-rs -v runs without the libphp.so link" php-fpm-rs -n -v

# ---- a pool, socket-activated, behind nginx
sed 's/^\[www\]$/[blog]/' /etc/php-fpm-rs/pool.d/www.conf.example > /etc/php-fpm-rs/pool.d/blog.conf
mkdir -p /var/www/blog
# error_log() goes to the pool's log, the journal: the request leaves its trace there
cat > /var/www/blog/index.php <<'PHP'
<?php
error_log("package test: request " . $_SERVER["REQUEST_URI"]);
echo "hello from ", $_SERVER["SERVER_NAME"] ?? "?", " via ", PHP_SAPI, "\n";
PHP
echo '<?php echo php_ini_loaded_file() ?: "none", " ", (int) function_exists("opcache_get_status"), "\n";' > /var/www/blog/ini.php
check "php-fpm-rs -t on the pool" php-fpm-rs -t -y /etc/php-fpm-rs/pool.d/blog.conf
sed -e 's/server_name blog.example.org;/server_name blog.test;/' \
    /usr/share/doc/php-fpm-rs/examples/nginx-php-fpm-rs.conf > /etc/nginx/sites-enabled/blog
rm -f /etc/nginx/sites-enabled/default
check "nginx -t" nginx -t
systemctl restart nginx   # (a reload would race the request below)
check "start php-fpm@blog.socket" systemctl start php-fpm@blog.socket
check "service not running before the first request" sh -c '! systemctl is-active --quiet php-fpm@blog.service'
marker="/index.php?id=$$-$RANDOM"
body=$(curl -sS --max-time 20 -H 'Host: blog.test' "http://127.0.0.1$marker")
if [ "$body" = "hello from blog.test via fpm-fcgi" ]; then
  ok "request through nginx: $body"
else
  fail "request through nginx: $(echo "$body" | tr '\n' ' ' | cut -c1-120)"
  systemctl status --no-pager -n 20 php-fpm@blog.socket php-fpm@blog.service 2>&1 | sed 's/^/     /'
  tail -n 5 /var/log/nginx/error.log 2>&1 | sed 's/^/     /'
fi
check "php-fpm@blog.service started by the request" systemctl is-active --quiet php-fpm@blog.service
# The master's start-up line (php-fpm's wording) and the request's error_log() line,
# through the journal (journald reads the streams asynchronously: poll, 15 s at most).
journal_has() { journalctl -u php-fpm@blog --no-pager -o cat | grep -qF -- "$1"; }
if until_ok 15 journal_has "ready to handle connections"; then
  ok "journalctl -u php-fpm@blog shows the pool's start"
else
  fail "journalctl -u php-fpm@blog has no 'ready to handle connections'"
fi
if until_ok 15 journal_has "package test: request $marker"; then
  ok "journalctl -u php-fpm@blog shows the request: $(journalctl -u php-fpm@blog --no-pager -o cat | grep -F -- "$marker" | head -n 1)"
  check "the journal entry carries REQUEST_URI=$marker" \
    sh -c 'journalctl -u php-fpm@blog --no-pager -o cat "REQUEST_URI=$1" | grep -qF "package test: request $1"' sh "$marker"
else
  fail "journalctl -u php-fpm@blog has no 'package test: request $marker'"
  journalctl -u php-fpm@blog --no-pager -n 20 2>&1 | sed 's/^/     /'
fi
echo "info php.ini and opcache (php_ini_loaded_file, opcache loaded): $(curl -sS --max-time 20 -H 'Host: blog.test' http://127.0.0.1/ini.php)"
systemctl enable php-fpm@blog.socket >/dev/null 2>&1

# ---- remove: our units stop, nothing else does, the conffiles stay
active_before=$(systemctl list-units --no-legend --state=active | grep -v php-fpm | awk '{print $1}' | sort)
apt-get remove -y php-fpm-rs > /tmp/remove.log 2>&1 || { cat /tmp/remove.log; fail "apt-get remove"; }
active_after=$(systemctl list-units --no-legend --state=active | grep -v php-fpm | awk '{print $1}' | sort)
check "remove stops the pool" test "$(active_php_units)" = 0
check "no php-fpm-rs process left" sh -c '! pgrep -x php-fpm-rs'
check "the pool's socket file is gone" test ! -e /run/php-fpm/blog.sock
if [ "$active_before" = "$active_after" ]; then ok "remove stops nothing else"; else fail "remove changed other units: $(diff <(echo "$active_before") <(echo "$active_after") | tr '\n' ' ')"; fi
check "nginx still active" systemctl is-active --quiet nginx
check "package in state rc" sh -c 'dpkg -l php-fpm-rs | grep -q "^rc"'
check "conffiles kept" test -f /etc/php-fpm-rs/php-fpm.conf -a -f /etc/php-fpm-rs/pool.d/www.conf.example
check "binary removed" test ! -e /usr/sbin/php-fpm-rs

# ---- purge: the conffiles go, the administrator's pool file stays
apt-get purge -y php-fpm-rs > /tmp/purge.log 2>&1 || { cat /tmp/purge.log; fail "apt-get purge"; }
check "conffiles removed" test ! -e /etc/php-fpm-rs/php-fpm.conf -a ! -e /etc/php-fpm-rs/pool.d/www.conf.example
check "the administrator's pool file is kept" test -f /etc/php-fpm-rs/pool.d/blog.conf
check "no dangling enable link" sh -c '! ls /etc/systemd/system/*.wants/php-fpm* 2>/dev/null | grep -q .'
check "dpkg forgot the package" sh -c '! dpkg -s php-fpm-rs'
exit $failed
