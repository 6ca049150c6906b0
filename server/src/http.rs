//! HTTP routes: the signaling WebSocket and the health check.

use std::sync::Arc;

use std::net::SocketAddr;

use aula_protocol::ErrorCode;
use std::collections::HashMap;

use axum::extract::{ConnectInfo, Path, Query, State, WebSocketUpgrade};
use axum::http::StatusCode;
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

/// The server's routes.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/rtc", get(signal))
        .route("/yjs/{room}", get(yjs))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readiness))
        .route("/metrics", get(metrics))
        .route("/", get(browser_page))
        .route("/aula.js", get(browser_script))
        .nest(aula_protocol::api::API_PREFIX, crate::api::routes())
        .with_state(state)
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

async fn metrics(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
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
