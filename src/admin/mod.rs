//! The admin JSON API (`/_auth/api/`) and console (`/_auth/admin/`).

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::app::App;
use crate::web::{Body, RequestCtx, respond};

pub async fn handle(_app: &App, _req: Request<Incoming>, _ctx: &RequestCtx) -> Response<Body> {
    respond::json(
        StatusCode::NOT_FOUND,
        &serde_json::json!({ "error": "not_found", "message": "no such endpoint" }),
    )
}
