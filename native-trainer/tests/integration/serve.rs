//! `brainmvp serve`: the real binary on a free port, spoken to over plain HTTP/1.1: MIME types,
//! the cross-origin isolation headers, index pages, 404, no way out of the folder, HEAD and 405,
//! and a one-line error for a folder that is not a built site.

use crate::support::scratch;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn site() -> PathBuf {
    let root = scratch("site");
    let dist = root.join("dist");
    std::fs::create_dir_all(dist.join("assets/sample")).unwrap();
    std::fs::write(dist.join("index.html"), "<!doctype html><title>t</title>").unwrap();
    std::fs::write(dist.join("brainmvp-web_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(dist.join("brainmvp-web.js"), "export default 1;").unwrap();
    std::fs::write(dist.join("assets/demo-model.bmvp"), b"BRAINMVP").unwrap();
    std::fs::write(dist.join("assets/sample/index.html"), "sample").unwrap();
    std::fs::write(root.join("secret.txt"), "outside").unwrap();
    dist
}

fn start(dir: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_brainmvp"))
        .args(["serve", dir.to_str().unwrap(), "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_string();
    assert!(line.starts_with("serving "), "{line}");
    Server { child, address }
}

/// (status, lower-cased headers, body) of one request.
fn request(server: &Server, method: &str, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(&server.address).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, raw[split + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn serves_the_site_with_mime_types_and_isolation_headers() {
    let dist = site();
    let server = start(&dist);
    for (path, mime) in [
        ("/", "text/html; charset=utf-8"),
        ("/index.html", "text/html; charset=utf-8"),
        ("/brainmvp-web_bg.wasm", "application/wasm"),
        ("/brainmvp-web.js", "text/javascript; charset=utf-8"),
        ("/assets/demo-model.bmvp", "application/octet-stream"),
        ("/assets/sample/", "text/html; charset=utf-8"),
        ("/assets/%73ample/index.html", "text/html; charset=utf-8"),
    ] {
        let (status, headers, body) = request(&server, "GET", path);
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&headers, "content-type"), Some(mime), "{path}");
        assert_eq!(
            header(&headers, "cross-origin-opener-policy"),
            Some("same-origin")
        );
        assert_eq!(
            header(&headers, "cross-origin-embedder-policy"),
            Some("require-corp")
        );
        assert!(!body.is_empty(), "{path}");
    }
    let (_, _, wasm) = request(&server, "GET", "/brainmvp-web_bg.wasm");
    assert_eq!(wasm, b"\0asm\x01\0\0\0");
    let (status, headers, body) = request(&server, "HEAD", "/brainmvp-web.js");
    assert_eq!((status, body.len()), (200, 0));
    assert_eq!(header(&headers, "content-length"), Some("17"));
}

#[test]
fn missing_files_traversal_and_other_methods_are_refused() {
    let dist = site();
    let server = start(&dist);
    for path in [
        "/missing.js",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/../../secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/bad%zzescape",
    ] {
        let (status, headers, body) = request(&server, "GET", path);
        assert!(status == 404 || status == 403, "{path}: {status}");
        assert_ne!(body, b"outside", "{path}");
        assert_eq!(
            header(&headers, "cross-origin-opener-policy"),
            Some("same-origin")
        );
    }
    let (status, headers, _) = request(&server, "POST", "/index.html");
    assert_eq!(status, 405);
    assert_eq!(header(&headers, "allow"), Some("GET, HEAD"));
}

#[test]
fn a_folder_without_a_built_site_is_a_one_line_error() {
    let empty = scratch("empty");
    let output = Command::new(env!("CARGO_BIN_EXE_brainmvp"))
        .args(["serve", empty.to_str().unwrap(), "--port", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let line = stderr.trim();
    assert!(!line.contains('\n'), "{line}");
    assert!(line.contains(empty.to_str().unwrap()), "{line}");
    assert!(line.contains("trunk build --release"), "{line}");
}
