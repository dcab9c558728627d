//! The embedded admin console: the built single-page app from `admin-ui/dist`, with an
//! `index.html` fallback so that client-side routes survive deep links and reloads.
//!
//! The build writes brotli and gzip copies beside each text file (`app-…js.br`, `.gz`);
//! the copy the browser accepts is served, so nothing is compressed at run time. Files
//! with a content hash in their names are cached for good; `index.html`, which names
//! them, is revalidated with its ETag on every load.

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// The console's built files, compiled into the binary.
#[derive(rust_embed::Embed)]
#[folder = "../admin-ui/dist"]
struct Dist;

/// Revalidate on every use: index.html and files whose names do not change between builds.
const NO_CACHE: &str = "no-cache";
/// Content-hashed file names never change meaning, so they may be kept for good.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Precompressed copies, best first: (content coding, file suffix).
const ENCODINGS: [(&str, &str); 2] = [("br", ".br"), ("gzip", ".gz")];

/// Serve the file at `uri`, or `index.html` for any other path outside `/api` and `/assets`.
pub async fn serve(uri: Uri, request: HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path == "api" || path.starts_with("api/") {
        return ApiError::not_found("no such API endpoint").into_response();
    }
    if !path.is_empty()
        && let Some(file) = Dist::get(path)
    {
        let cache = if is_hashed(path) { IMMUTABLE } else { NO_CACHE };
        return file_response(path, file, cache, &request);
    }
    // A missing script or stylesheet must not turn into an HTML page the browser misreads.
    if path.starts_with("assets/") {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    match Dist::get("index.html") {
        Some(index) => file_response("index.html", index, NO_CACHE, &request),
        None => (
            StatusCode::NOT_FOUND,
            "the admin console was not built into this binary",
        )
            .into_response(),
    }
}

fn file_response(
    path: &str,
    file: rust_embed::EmbeddedFile,
    cache: &'static str,
    request: &HeaderMap,
) -> Response {
    let accept = request
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (encoding, body) = ENCODINGS
        .iter()
        .filter(|(coding, _)| accepts(accept, coding))
        .find_map(|(coding, suffix)| {
            Dist::get(&format!("{path}{suffix}")).map(|f| (Some(*coding), f.data))
        })
        .unwrap_or((None, file.data));
    // One tag per file content and coding: a cache must not hand gzip to whoever asked for br.
    let hash: String = file.metadata.sha256_hash()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let etag = match encoding {
        Some(coding) => format!("\"{hash}-{coding}\""),
        None => format!("\"{hash}\""),
    };
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| matches_etag(tags, &etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body.into_owned().into_response()
    };
    let headers = response.headers_mut();
    if !fresh {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(path)),
        );
        if let Some(coding) = encoding {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
        }
    }
    if let Ok(tag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, tag);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Whether an `Accept-Encoding` value accepts `coding` (named, or `*`, without `q=0`).
fn accepts(accept: &str, coding: &str) -> bool {
    let mut verdict = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        if name.eq_ignore_ascii_case(coding) {
            return !refused;
        }
        if name == "*" {
            verdict = Some(!refused);
        }
    }
    verdict.unwrap_or(false)
}

/// Whether an `If-None-Match` value names `etag` (weakly compared, as RFC 9110 asks for GET).
fn matches_etag(tags: &str, etag: &str) -> bool {
    tags.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

/// The media type of a built file, by extension.
fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map_or("", |(_, e)| e);
    match ext.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// Whether a file name carries a bundler content hash (`assets/index-B3x9_fQa.js`).
fn is_hashed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name.split_once('.').map_or(name, |(s, _)| s);
    // `[name]-[hash]`: the build's hash is the last eight characters, in base64url, so it
    // may hold a `-` itself (`app-BD-7Fzsz`).
    const HASH_LEN: usize = 8;
    let Some(dash) = stem.len().checked_sub(HASH_LEN + 1) else {
        return false;
    };
    let (head, hash) = (&stem.as_bytes()[..=dash], &stem.as_bytes()[dash + 1..]);
    dash > 0
        && head[dash] == b'-'
        && hash
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
        && hash
            .iter()
            .any(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(path: &str) -> Response {
        serve(path.parse().unwrap(), HeaderMap::new()).await
    }

    fn header(r: &Response, name: header::HeaderName) -> &str {
        r.headers().get(name).unwrap().to_str().unwrap()
    }

    #[tokio::test]
    async fn serves_index_for_client_routes() {
        for path in ["/", "/transactions", "/transactions/abc-123?x=1", "/events"] {
            let r = get(path).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            assert!(header(&r, header::CONTENT_TYPE).starts_with("text/html"));
            assert_eq!(header(&r, header::CACHE_CONTROL), NO_CACHE);
        }
    }

    #[tokio::test]
    async fn leaves_api_and_missing_assets_alone() {
        assert_eq!(get("/api/nope").await.status(), StatusCode::NOT_FOUND);
        let r = get("/assets/missing.js").await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn serves_built_files_with_their_type() {
        let js = Dist::iter()
            .find(|p| p.ends_with(".js"))
            .expect("the console is built");
        let r = get(&format!("/{js}")).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(header(&r, header::CONTENT_TYPE).starts_with("text/javascript"));
    }

    #[test]
    fn reads_accept_encoding() {
        assert!(accepts("gzip, deflate, br", "br"));
        assert!(accepts("br;q=1.0, gzip;q=0.5", "gzip"));
        assert!(!accepts("br;q=0, gzip", "br"));
        assert!(!accepts("identity", "gzip"));
        assert!(accepts("*", "gzip"));
        assert!(!accepts("*, gzip;q=0", "gzip"));
        assert!(matches_etag("\"a\", W/\"b\"", "\"b\""));
        assert!(!matches_etag("\"a\"", "\"b\""));
    }

    #[test]
    fn tells_hashed_names() {
        assert!(is_hashed("assets/index-B3x9_fQa.js"));
        assert!(is_hashed("assets/app-BD-7Fzsz.js"));
        assert!(is_hashed("assets/app-BD-7Fzsz.js.br"));
        assert!(!is_hashed("assets/app.js"));
        assert!(!is_hashed("assets/circuit-breakers.js"));
        assert!(!is_hashed("index.html"));
    }
}
