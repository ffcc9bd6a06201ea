//! A proxied request's activity row on its way to the writer.
//!
//! The request path only copies what the row is made of into a fixed-size record (numbers,
//! the client address, shared or inline text); the description and the metadata JSON are built
//! by the writer, off the request's task.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use smallvec::SmallVec;

use crate::store::{NewActivity, Ts, UserId};
use crate::web::RequestCtx;
use crate::web::request_ctx::RequestId;

/// Text stored inline up to 64 bytes, which holds most paths and route patterns.
type Inline = SmallVec<[u8; 64]>;

/// `metadata` of a `request` activity row.
#[derive(serde::Serialize)]
struct RequestMeta<'a> {
    method: &'a str,
    path: &'a str,
    status: u16,
    duration_ms: f64,
    route: Option<&'a str>,
    request_id: &'a str,
}

/// One proxied (or forward-authorised) request of a signed-in user.
#[derive(Debug, Clone)]
pub struct RequestActivity {
    user_id: UserId,
    at: Ts,
    client_ip: IpAddr,
    user_agent: Option<Arc<str>>,
    method: Method,
    path: Inline,
    route: Option<Inline>,
    status: u16,
    duration_us: u64,
    request_id: RequestId,
}

/// What a request was and how it ended, for [`RequestActivity::new`].
pub struct RequestFacts<'a> {
    pub method: &'a Method,
    /// The path, without the query.
    pub path: &'a str,
    pub route: Option<&'a str>,
    pub status: u16,
    pub elapsed: Duration,
}

impl RequestActivity {
    pub fn new(user_id: UserId, at: Ts, ctx: &RequestCtx, f: RequestFacts<'_>) -> Self {
        RequestActivity {
            user_id,
            at,
            client_ip: ctx.client_ip,
            user_agent: ctx.user_agent.clone(),
            method: f.method.clone(),
            path: Inline::from_slice(f.path.as_bytes()),
            route: f.route.map(|r| Inline::from_slice(r.as_bytes())),
            status: f.status,
            duration_us: u64::try_from((f.elapsed.as_nanos() + 500) / 1000).unwrap_or(u64::MAX),
            request_id: ctx.request_id.clone(),
        }
    }

    /// The row, as the writer stores it.
    pub(crate) fn into_row(self) -> NewActivity {
        // Both were `&str` when recorded.
        let path = String::from_utf8_lossy(&self.path);
        let route = self.route.as_deref().map(String::from_utf8_lossy);
        let metadata = serde_json::value::to_raw_value(&RequestMeta {
            method: self.method.as_str(),
            path: &path,
            status: self.status,
            duration_ms: self.duration_us as f64 / 1000.0,
            route: route.as_deref(),
            request_id: self.request_id.as_str(),
        })
        .ok();
        NewActivity {
            user_id: Some(self.user_id),
            activity_type: super::ActivityKind::Request.as_str().to_string(),
            description: Some(format!("{} {path} → {}", self.method, self.status)),
            ip_address: Some(self.client_ip.to_string()),
            user_agent: self.user_agent.as_deref().map(str::to_string),
            metadata,
            created_at: self.at,
        }
    }
}
