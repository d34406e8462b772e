//! End to end through a real nginx on loopback: a page, a POST form and a file upload
//! are served by php-fpm-rs exactly as a browser would send them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Stack {
    dir: tempfile::TempDir,
    fpm: Child,
    port: u16,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let conf = self.dir.path().join("nginx.conf");
        let _ = Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .args(["-s", "stop"])
            .status();
        let _ = self.fpm.kill();
        let _ = self.fpm.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind :0")
        .local_addr()
        .expect("addr")
        .port()
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ready() {
        assert!(Instant::now() < deadline, "{what} not ready after 15 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start() -> Stack {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let www = d.join("www");
    std::fs::create_dir(&www).expect("mkdir www");
    std::fs::write(
        www.join("index.php"),
        "<?php echo 'page from ', PHP_SAPI, ' ', $_SERVER['REQUEST_METHOD'], ' ', $_SERVER['PATH_INFO'] ?? '-', \"\\n\";",
    )
    .expect("write index");
    std::fs::write(
        www.join("form.php"),
        "<?php echo 'hello ', $_POST['name'] ?? '?', ' ', $_POST['n'] ?? '?';",
    )
    .expect("write form");
    std::fs::write(
        www.join("upload.php"),
        "<?php $f = $_FILES['doc']; echo $f['name'], ' ', $f['size'], ' ', $f['error'], ' ', md5_file($f['tmp_name']);",
    )
    .expect("write upload");
    let sock = d.join("fpm.sock");
    let pool = format!(
        "[global]\nerror_log = {}/fpm.log\n[e2e]\nlisten = {}\nlisten.mode = 0666\npm = static\npm.max_children = 2\n",
        d.display(),
        sock.display()
    );
    std::fs::write(d.join("pool.conf"), pool).expect("write pool");
    let fpm = Command::new(env!("CARGO_BIN_EXE_php-fpm-rs"))
        .args(["-F", "-R", "-y"])
        .arg(d.join("pool.conf"))
        .stdin(Stdio::null())
        .spawn()
        .expect("start php-fpm-rs");
    wait_for("php-fpm-rs socket", || {
        std::os::unix::net::UnixStream::connect(&sock).is_ok()
    });
    let port = free_port();
    let nginx = format!(
        "daemon on; worker_processes 1; pid {d}/nginx.pid; error_log {d}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
  access_log off; client_body_temp_path {d}/body; fastcgi_temp_path {d}/fcgi;
  proxy_temp_path {d}/proxy; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  client_max_body_size 20m;
  server {{
    listen 127.0.0.1:{port}; root {www};
    location ~ [^/]\\.php(/|$) {{
      fastcgi_split_path_info ^(.+?\\.php)(/.*)$;
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
      fastcgi_param PATH_INFO $fastcgi_path_info;
      fastcgi_keep_conn on;
      fastcgi_pass unix:{sock};
    }}
  }}
}}
",
        d = d.display(),
        www = www.display(),
        sock = sock.display()
    );
    std::fs::write(d.join("nginx.conf"), nginx).expect("write nginx.conf");
    let st = Command::new("nginx")
        .arg("-c")
        .arg(d.join("nginx.conf"))
        .status()
        .expect("run nginx");
    assert!(
        st.success(),
        "nginx failed to start: {}",
        log(&d.join("nginx-error.log"))
    );
    let stack = Stack { dir, fpm, port };
    wait_for("nginx", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    stack
}

fn log(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-m", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (code.to_string(), body.to_string())
}

#[test]
fn nginx_serves_page_form_and_upload_through_php_fpm_rs() {
    let stack = start();
    let base = format!("http://127.0.0.1:{}", stack.port);

    let (code, body) = curl(&[&format!("{base}/index.php/extra/path")]);
    assert_eq!(code, "200", "{body}");
    assert_eq!(body, "page from fpm-fcgi GET /extra/path\n");

    let (code, body) = curl(&[
        "--data",
        "name=Ada+Lovelace&n=42",
        &format!("{base}/form.php"),
    ]);
    assert_eq!(
        (code.as_str(), body.as_str()),
        ("200", "hello Ada Lovelace 42")
    );

    // under Debian's upload_max_filesize (2M)
    let upload: PathBuf = stack.dir.path().join("doc.bin");
    let content: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&upload, &content).expect("write upload");
    let digest = Command::new("md5sum")
        .arg(&upload)
        .output()
        .expect("md5sum");
    let digest = String::from_utf8_lossy(&digest.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    let (code, body) = curl(&[
        "-F",
        &format!("doc=@{}", upload.display()),
        &format!("{base}/upload.php"),
    ]);
    assert_eq!(code, "200", "{body}");
    assert_eq!(body, format!("doc.bin 1500000 0 {digest}"));

    let (code, body) = curl(&[&format!("{base}/missing.php")]);
    assert_eq!((code.as_str(), body.as_str()), ("404", "File not found.\n"));
}
