//! `brainmvp serve`: the built web page (`www/dist`) on localhost, with the MIME types browsers
//! insist on (`application/wasm`, JavaScript modules) and the cross-origin isolation headers
//! (COOP/COEP) that wasm threads and `SharedArrayBuffer` need. Read-only, GET and HEAD, never
//! outside the folder.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;

/// What every response carries: cross-origin isolation (wasm threads) and no stale pages.
const FIXED_HEADERS: [(&str, &str); 4] = [
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-embedder-policy", "require-corp"),
    ("cross-origin-resource-policy", "same-origin"),
    ("cache-control", "no-cache"),
];

/// The MIME type of a file name (by extension); `application/octet-stream` when unknown.
pub fn mime_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Checks `dir` is a built site (a folder with `index.html`) and returns it canonicalised.
pub fn site_root(dir: &Path) -> Result<PathBuf> {
    if !dir.join("index.html").is_file() {
        bail!(
            "{}: no index.html here; build the page first (cd www && trunk build --release)",
            dir.display()
        );
    }
    dir.canonicalize()
        .with_context(|| format!("{}: cannot resolve", dir.display()))
}

/// The file a URL path names under `root`, or `None` when it would leave `root` or is not a
/// file (directories give their `index.html`).
pub fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(url_path)?;
    let mut path = root.to_path_buf();
    for component in Path::new(decoded.trim_start_matches('/')).components() {
        match component {
            Component::Normal(part) => path.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if path.is_dir() {
        path.push("index.html");
    }
    let real = path.canonicalize().ok()?;
    (real.starts_with(root) && real.is_file()).then_some(real)
}

/// `%xx` decoding; `None` for a malformed escape or invalid UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn respond(
    status: StatusCode,
    content_type: &str,
    body: Bytes,
    head: bool,
) -> Response<Full<Bytes>> {
    let length = body.len();
    let mut response = Response::new(Full::new(if head { Bytes::new() } else { body }));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in FIXED_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(CONTENT_TYPE, value);
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn handle(root: Arc<PathBuf>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let head = request.method() == Method::HEAD;
    if request.method() != Method::GET && !head {
        let mut response = respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            Bytes::from_static(b"only GET and HEAD\n"),
            false,
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let url_path = request.uri().path().to_string();
    let response = match resolve(&root, &url_path) {
        Some(file) => match tokio::fs::read(&file).await {
            Ok(body) => respond(StatusCode::OK, mime_type(&file), body.into(), head),
            Err(_) => respond(
                StatusCode::FORBIDDEN,
                "text/plain",
                "cannot read\n".into(),
                head,
            ),
        },
        None => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".into(),
            head,
        ),
    };
    log::debug!(
        "{} {url_path} {}",
        request.method(),
        response.status().as_u16()
    );
    response
}

/// Serves `root` on `listener` until the task is dropped.
pub async fn serve_on(listener: TcpListener, root: PathBuf) -> Result<()> {
    let root = Arc::new(root);
    loop {
        let (stream, _) = listener.accept().await?;
        let root = Arc::clone(&root);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let root = Arc::clone(&root);
                async move { Ok::<_, std::convert::Infallible>(handle(root, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(err) = connection.await {
                log::debug!("connection ended: {err}");
            }
        });
    }
}

/// Binds `address` (port 0: any free port), prints the URL and serves `dir` until Ctrl-C.
pub fn serve(dir: &Path, address: SocketAddr) -> Result<()> {
    let root = site_root(dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("{address}: cannot listen"))?;
        let bound = listener.local_addr()?;
        println!(
            "serving {} at http://{bound}/ (Ctrl-C to stop)",
            dir.display()
        );
        tokio::select! {
            result = serve_on(listener, root) => result,
            _ = tokio::signal::ctrl_c() => {
                println!("stopped");
                Ok(())
            }
        }
    })
}
