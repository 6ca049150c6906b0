//! `docs/openapi.yaml` held to the server: every route it documents is one the server routes,
//! behind the server token, and every participant action it names is one the server knows.

use aula_protocol::api::{ApiClaims, ApiError, API_PREFIX};
use aula_protocol::token::unix_now;
use aula_server::{Server, ServerConfig, DEV_API_KEY, DEV_API_SECRET};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support;

/// The `(method, path)` pairs of the document's `paths`, in document order.
fn documented_routes() -> Vec<(String, String)> {
    let document = include_str!("../../docs/openapi.yaml");
    let mut routes = Vec::new();
    let mut in_paths = false;
    let mut path = None;
    for line in document.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /") {
            path = Some(format!("/{}", p.trim_end_matches(':')));
        } else if let (Some(method), Some(path)) = (
            line.strip_prefix("    ")
                .and_then(|l| l.strip_suffix(':'))
                .filter(|m| ["get", "post", "put", "patch", "delete"].contains(m)),
            &path,
        ) {
            routes.push((method.to_uppercase(), path.clone()));
        }
    }
    routes
}

/// One request to the server's HTTP port: the status code and the body.
async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the server accepts");
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: aula\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response read");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, body.to_owned())
}

#[tokio::test]
async fn every_documented_route_is_served_behind_the_server_token() {
    let _suite = support::shared().await;
    let routes = documented_routes();
    assert!(
        routes.len() >= 20,
        "docs/openapi.yaml's paths were not read: {routes:?}"
    );
    let server = Server::start(ServerConfig::dev(0, 0))
        .await
        .expect("server starts");
    let addr = server.http_addr();
    let token = ApiClaims::new(DEV_API_KEY, unix_now(), 600)
        .sign(DEV_API_SECRET)
        .expect("server token");
    let (status, body) = request(
        addr,
        "POST",
        &format!("{API_PREFIX}/rooms"),
        Some(&token),
        r#"{"name":"r"}"#,
    )
    .await;
    assert!(status < 300, "room not created: {status} {body}");

    for (method, path) in &routes {
        let path = format!(
            "{API_PREFIX}{}",
            path.replace("{room}", "r").replace("{identity}", "nobody")
        );
        let (status, body) = request(addr, method, &path, None, "{}").await;
        assert_eq!(status, 401, "{method} {path} without a token: {body}");

        let (status, body) = request(addr, method, &path, Some(&token), "{}").await;
        assert_ne!(status, 405, "{method} {path} is documented but not routed");
        if status >= 400 {
            // A refusal of the request itself (no such participant, a body without its
            // fields), never a route the server lacks: that would be an empty 404.
            let error: ApiError = serde_json::from_str(&body).unwrap_or_else(|err| {
                panic!("{method} {path}: {status} without an API error ({err}): {body:?}")
            });
            assert!(
                !error.message.contains("no participant action"),
                "{method} {path}: the server knows no such action"
            );
        }
    }
    server.shutdown().await;
}
