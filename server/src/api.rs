//! The server API for backends: HTTP + JSON under `/api/v1`, authenticated with a server
//! token (see [`aula_protocol::api`]). Documented in `docs/api.md` and `docs/openapi.yaml`.

use std::collections::HashMap;
use std::sync::Arc;

use aula_protocol::api::{
    ApiClaims, ApiError, Attendance, ChatPage, CreateRoom, LockRequest, MuteAllRequest,
    MuteRequest, ReasonRequest, SystemMessageRequest,
};
use aula_protocol::classroom::CHAT_PAGE;
use aula_protocol::{token::unix_now, ErrorCode, PermissionsPatch, RoomSettingsPatch, TokenError};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::classroom::{summarize, Command, Refusal, Subject};
use crate::state::ServerState;

type Shared = State<Arc<ServerState>>;

/// The API's routes (to be nested under [`aula_protocol::api::API_PREFIX`]).
pub fn routes() -> Router<Arc<ServerState>> {
    Router::new()
        .route("/rooms", get(list_rooms).post(create_room))
        .route("/rooms/{room}", get(room_detail))
        .route("/rooms/{room}/settings", patch(update_settings))
        .route("/rooms/{room}/participants", get(participants))
        .route("/rooms/{room}/admit-all", post(admit_all))
        .route("/rooms/{room}/clear-stage", post(clear_stage))
        .route("/rooms/{room}/mute-all", post(mute_all))
        .route("/rooms/{room}/spotlight", post(spotlight))
        .route("/rooms/{room}/lock", post(lock))
        .route("/rooms/{room}/end", post(end_class))
        .route("/rooms/{room}/chat", get(chat_history).post(system_message))
        .route("/rooms/{room}/attendance", get(attendance))
        .route(
            "/rooms/{room}/participants/{identity}/{action}",
            post(participant_action),
        )
        .route(
            "/rooms/{room}/participants/{identity}/permissions",
            patch(update_permissions),
        )
}

/// A refused API call: an HTTP status for the class of failure, an [`ApiError`] body.
struct Failure(StatusCode, ApiError);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Self {
        failure(refusal.code, refusal.message)
    }
}

fn failure(code: ErrorCode, message: impl Into<String>) -> Failure {
    let status = match code {
        ErrorCode::InvalidToken | ErrorCode::TokenExpired => StatusCode::UNAUTHORIZED,
        ErrorCode::PermissionDenied | ErrorCode::RoomMismatch => StatusCode::FORBIDDEN,
        ErrorCode::UnknownRoom | ErrorCode::UnknownParticipant | ErrorCode::UnknownTrack => {
            StatusCode::NOT_FOUND
        }
        ErrorCode::InvalidState
        | ErrorCode::StageFull
        | ErrorCode::RoomLocked
        | ErrorCode::Removed
        | ErrorCode::ChatDisabled => StatusCode::CONFLICT,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::ServerFull | ErrorCode::RoomFull => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    Failure(
        status,
        ApiError {
            code,
            message: message.into(),
        },
    )
}

type ApiResult<T> = Result<Json<T>, Failure>;

/// Verifies the bearer token and that it may act on `room` (when given).
fn authorize(
    state: &ServerState,
    headers: &HeaderMap,
    room: Option<&str>,
) -> Result<ApiClaims, Failure> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            failure(
                ErrorCode::InvalidToken,
                "send a server token: Authorization: Bearer <token>",
            )
        })?;
    let claims = ApiClaims::verify(
        token.trim(),
        |key| state.keys.get(key).map(String::as_str),
        unix_now(),
    )
    .map_err(|err| match err {
        TokenError::Expired => failure(ErrorCode::TokenExpired, err.to_string()),
        other => failure(ErrorCode::InvalidToken, other.to_string()),
    })?;
    if let Some(room) = room {
        in_scope(&claims, room)?;
    }
    Ok(claims)
}

/// Refuses a server token scoped to another room than `room`.
fn in_scope(claims: &ApiClaims, room: &str) -> Result<(), Failure> {
    if claims.allows_room(room) {
        Ok(())
    } else {
        Err(failure(
            ErrorCode::PermissionDenied,
            "the token is for another room",
        ))
    }
}

/// Parses a JSON body; an empty body is the type's default when it has one.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Failure> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(text).map_err(|e| {
        failure(
            ErrorCode::MalformedMessage,
            format!("the body is not what this call takes: {e}"),
        )
    })
}

#[derive(serde::Serialize)]
struct Done {
    ok: bool,
}

fn done() -> ApiResult<Done> {
    Ok(Json(Done { ok: true }))
}

async fn list_rooms(
    State(state): Shared,
    headers: HeaderMap,
) -> ApiResult<Vec<aula_protocol::api::RoomSummary>> {
    authorize(&state, &headers, None)?;
    Ok(Json(state.rooms.list().await?))
}

async fn create_room(
    State(state): Shared,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, Failure> {
    // The caller first: who sends no valid token learns nothing about what the body lacks.
    let claims = authorize(&state, &headers, None)?;
    let request: CreateRoom = body(&bytes)?;
    in_scope(&claims, &request.name)?;
    let name = &request.name;
    if name.trim().is_empty()
        || name.len() > aula_protocol::token::MAX_NAME_BYTES
        || name.chars().any(char::is_control)
    {
        return Err(failure(
            ErrorCode::InvalidRequest,
            "a room name is 1 to 128 bytes of text",
        ));
    }
    let detail = state.rooms.create(&request.name, request.settings).await?;
    Ok((StatusCode::CREATED, Json(detail)).into_response())
}

async fn room_detail(
    State(state): Shared,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> ApiResult<aula_protocol::api::RoomDetail> {
    authorize(&state, &headers, Some(&room))?;
    Ok(Json(state.rooms.detail(&room).await?))
}

async fn update_settings(
    State(state): Shared,
    headers: HeaderMap,
    Path(room): Path<String>,
    bytes: Bytes,
) -> ApiResult<aula_protocol::api::RoomDetail> {
    authorize(&state, &headers, Some(&room))?;
    let patch: RoomSettingsPatch = body(&bytes)?;
    state
        .rooms
        .command(&room, Command::UpdateSettings(patch))
        .await?;
    Ok(Json(state.rooms.detail(&room).await?))
}

async fn participants(
    State(state): Shared,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> ApiResult<Vec<aula_protocol::ParticipantInfo>> {
    authorize(&state, &headers, Some(&room))?;
    state.rooms.record(&room).await?;
    Ok(Json(state.rooms.participants(&room).await))
}

async fn run(state: &ServerState, room: &str, command: Command) -> ApiResult<Done> {
    state.rooms.command(room, command).await?;
    done()
}

async fn admit_all(
    State(state): Shared,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> ApiResult<Done> {
    authorize(&state, &headers, Some(&room))?;
    run(&state, &room, Command::AdmitAll).await
}

async fn clear_stage(
    State(state): Shared,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> ApiResult<Done> {
    authorize(&state, &headers, Some(&room))?;
    run(&state, &room, Command::ClearStage).await
}

async fn mute_all(
    State(state): Shared,
    headers: HeaderMap,
    Path(room): Path<String>,
    bytes: Bytes,
) -> ApiResult<Done> {
    authorize(&state, &headers, Some(&room))?;
    let request: MuteAllRequest = body(&bytes)?;
    run(
        &state,
        &room,
        Command::MuteAll(request.kind, request.allow_unmute),
    )
    .await
}

#[derive(Deserialize)]
struct SpotlightRequest {
    #[serde(default)]
    identity: Option<String>,
}

async fn spotlight(
    State(state): Shared,
    headers: HeaderMap,
    Path(room): Path<String>,
    bytes: Bytes,
) -> ApiResult<Done> {
    authorize(&state, &headers, Some(&room))?;
    let request: SpotlightRequest = body(&bytes)?;
    run(
        &state,
        &room,
        Command::Spotlight(request.identity.map(Subject::Identity)),
    )
    .await
}

async fn lock(
    State(state): Shared,
    headers: HeaderMap,
    Path(room): Path<String>,
    bytes: Bytes,
) -> ApiResult<Done> {
    authorize(&state, &headers, Some(&room))?;
    let request: LockRequest = body(&bytes)?;
    run(&state, &room, Command::Lock(request.locked)).await
}

async fn end_class(
    State(state): Shared,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> ApiResult<Done> {
    authorize(&state, &headers, Some(&room))?;
    run(&state, &room, Command::EndClass).await
}

async fn system_message(
    State(state): Shared,
    headers: HeaderMap,
    Path(room): Path<String>,
    bytes: Bytes,
) -> ApiResult<aula_protocol::ChatMessage> {
    authorize(&state, &headers, Some(&room))?;
    let request: SystemMessageRequest = body(&bytes)?;
    let stored = state
        .rooms
        .command(
            &room,
            Command::SystemMessage {
                text: request.text,
                to: request.to,
            },
        )
        .await?;
    stored
        .map(Json)
        .ok_or_else(|| failure(ErrorCode::Internal, "the message was not stored"))
}

#[derive(Deserialize)]
struct ClassQuery {
    class: Option<u64>,
    before: Option<u64>,
    limit: Option<usize>,
}

async fn chat_history(
    State(state): Shared,
    headers: HeaderMap,
    Path(room): Path<String>,
    Query(query): Query<ClassQuery>,
) -> ApiResult<ChatPage> {
    authorize(&state, &headers, Some(&room))?;
    let record = state.rooms.record(&room).await?;
    let class = query.class.unwrap_or(record.class);
    let before = query.before.unwrap_or(u64::MAX);
    let limit = query.limit.unwrap_or(CHAT_PAGE).clamp(1, 10_000);
    let store = state.rooms.store();
    let page =
        tokio::task::spawn_blocking(move || store.chat_page(&room, class, before, limit, None))
            .await
            .map_err(|e| failure(ErrorCode::Internal, e.to_string()))?
            .map_err(|e| failure(ErrorCode::Internal, e.to_string()))?;
    Ok(Json(ChatPage {
        messages: page.0,
        more: page.1,
    }))
}

async fn attendance(
    State(state): Shared,
    headers: HeaderMap,
    Path(room): Path<String>,
    Query(query): Query<ClassQuery>,
) -> ApiResult<Attendance> {
    authorize(&state, &headers, Some(&room))?;
    let record = state.rooms.record(&room).await?;
    let class = query.class.unwrap_or(record.class);
    let store = state.rooms.store();
    let name = room.clone();
    let events = tokio::task::spawn_blocking(move || store.attendance(&name, class))
        .await
        .map_err(|e| failure(ErrorCode::Internal, e.to_string()))?
        .map_err(|e| failure(ErrorCode::Internal, e.to_string()))?;
    let now_ms = crate::classroom::Now::system().unix_ms;
    Ok(Json(Attendance {
        room,
        class,
        participants: summarize(&events, now_ms),
    }))
}

async fn participant_action(
    State(state): Shared,
    headers: HeaderMap,
    Path((room, identity, action)): Path<(String, String, String)>,
    bytes: Bytes,
) -> ApiResult<Done> {
    authorize(&state, &headers, Some(&room))?;
    let who = Subject::Identity(identity);
    let command = match action.as_str() {
        "admit" => Command::Admit(who),
        "deny" => Command::Deny(who, body::<ReasonRequest>(&bytes)?.reason),
        "stage" => Command::InviteToStage(who),
        "unstage" => Command::MoveToAudience(who),
        "mute" => Command::Mute(who, body::<MuteRequest>(&bytes)?.kind),
        "stop-screen-share" => Command::StopScreenShare(who),
        "remove" => Command::Remove(who, body::<ReasonRequest>(&bytes)?.reason),
        "lower-hand" => Command::LowerHand(who),
        "co-teacher" => {
            let request: HashMap<String, bool> = body(&bytes)?;
            Command::SetCoTeacher(who, request.get("co_teacher").copied().unwrap_or(true))
        }
        other => {
            return Err(failure(
                ErrorCode::InvalidRequest,
                format!("no participant action {other:?}"),
            ))
        }
    };
    run(&state, &room, command).await
}

async fn update_permissions(
    State(state): Shared,
    headers: HeaderMap,
    Path((room, identity)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult<Done> {
    authorize(&state, &headers, Some(&room))?;
    let patch: PermissionsPatch = body(&bytes)?;
    run(
        &state,
        &room,
        Command::UpdatePermissions(Subject::Identity(identity), patch),
    )
    .await
}
