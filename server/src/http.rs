//! HTTP routes: the signaling WebSocket, the health checks and the metrics.

use std::sync::Arc;

use std::net::SocketAddr;

use aula_protocol::ErrorCode;
use std::collections::HashMap;

use axum::extract::{ConnectInfo, Path, Query, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::response::{Html, Response};
use axum::routing::get;
use axum::Router;

use crate::session;
use crate::state::ServerState;

/// Frames larger than this close the WebSocket outright. Messages above
/// [`aula_protocol::MAX_SIGNAL_MESSAGE_BYTES`] but below this get an error reply and the
/// connection stays up.
pub const MAX_WEBSOCKET_FRAME_BYTES: usize = 1024 * 1024;

/// The server's routes; `/metrics` among them unless it has its own listener.
pub fn router(state: Arc<ServerState>, with_metrics: bool) -> Router {
    let router = Router::new()
        .route("/rtc", get(signal))
        .route("/yjs/{room}", get(yjs))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readiness))
        .route("/", get(browser_page))
        .route("/aula.js", get(browser_script))
        .nest(aula_protocol::api::API_PREFIX, crate::api::routes());
    let router = if with_metrics {
        router.route("/metrics", get(metrics))
    } else {
        router
    };
    router.with_state(state)
}

/// The routes of the separate metrics listener (`metrics_listen`).
pub fn metrics_router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

/// Whether `headers` carry `Authorization: Bearer <expected>`; compared in constant time.
fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    let Some(given) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (given, expected) = (given.trim().as_bytes(), expected.as_bytes());
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// The browser client: a page on the documented protocol, compiled into the binary.
async fn browser_page() -> impl IntoResponse {
    Html(include_str!("../static/index.html"))
}

async fn browser_script() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/javascript; charset=utf-8",
        )],
        include_str!("../static/aula.js"),
    )
}

/// Ready while the server takes new sessions; unready (503) once it drains.
async fn readiness(State(state): State<Arc<ServerState>>) -> Response {
    if *state.shutdown.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        "ready\n".into_response()
    }
}

async fn metrics(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.metrics_token {
        if !bearer_matches(&headers, token) {
            return (
                StatusCode::UNAUTHORIZED,
                [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
                "a bearer token is required\n",
            )
                .into_response();
        }
    }
    let (rooms, participants, tracks) = state.rooms.census().await;
    let metrics = &state.metrics;
    metrics.rooms.set(rooms as i64);
    metrics.participants.set(participants as i64);
    metrics.tracks.set(tracks as i64);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

async fn signal(
    ws: WebSocketUpgrade,
    State(state): State<Arc<ServerState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let Some(permit) = state.connections.admit(peer.ip()) else {
        state.metrics.error(ErrorCode::RateLimited);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many signaling connections from this address\n",
        )
            .into_response();
    };
    ws.max_message_size(MAX_WEBSOCKET_FRAME_BYTES)
        .max_frame_size(MAX_WEBSOCKET_FRAME_BYTES)
        .on_upgrade(move |socket| async move {
            session::run(socket, state).await;
            drop(permit);
        })
}

/// The y-websocket endpoint: `GET /yjs/{room}?token=...` (see [`crate::whiteboard::yjs`]).
async fn yjs(
    ws: WebSocketUpgrade,
    Path(room): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    State(state): State<Arc<ServerState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Response {
    let Some(token) = query.get("token") else {
        return (StatusCode::UNAUTHORIZED, "missing ?token=\n").into_response();
    };
    let claims = match state.verify_token(token) {
        Ok(claims) => claims,
        Err(err) => return (StatusCode::UNAUTHORIZED, format!("{err}\n")).into_response(),
    };
    if claims.room != room {
        return (StatusCode::FORBIDDEN, "the token is for a different room\n").into_response();
    }
    let Some(permit) = state.connections.admit(peer.ip()) else {
        state.metrics.error(ErrorCode::RateLimited);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many connections from this address\n",
        )
            .into_response();
    };
    ws.max_message_size(MAX_WEBSOCKET_FRAME_BYTES)
        .max_frame_size(MAX_WEBSOCKET_FRAME_BYTES)
        .on_upgrade(move |socket| async move {
            crate::whiteboard::yjs::serve(socket, state, claims).await;
            drop(permit);
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::AUTHORIZATION,
            value.parse().expect("a header value"),
        );
        headers
    }

    #[test]
    fn only_the_exact_bearer_token_opens_the_metrics() {
        let token = "0123456789abcdef";
        assert!(bearer_matches(
            &with_authorization("Bearer 0123456789abcdef"),
            token
        ));
        assert!(!bearer_matches(&HeaderMap::new(), token));
        assert!(!bearer_matches(
            &with_authorization("Bearer 0123456789abcdeF"),
            token
        ));
        assert!(!bearer_matches(
            &with_authorization("Bearer 0123456789abcde"),
            token
        ));
        assert!(!bearer_matches(
            &with_authorization("Basic 0123456789abcdef"),
            token
        ));
    }
}
