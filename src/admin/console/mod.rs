use crate::app::App;
use crate::web::{Body, RequestCtx};
use http::{Request, Response};
use hyper::body::Incoming;
pub async fn handle(_app: &App, _req: Request<Incoming>, _ctx: &RequestCtx) -> Response<Body> {
    crate::web::respond::text(http::StatusCode::NOT_FOUND, "todo")
}
