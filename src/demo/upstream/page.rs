//! What the app says about a request: as JSON (`/echo`, or when JSON is asked for) or as an
//! HTML page for browsers.

use std::fmt::Write as _;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use super::{ResponseBody, full, response, text};

pub(super) async fn echo(req: Request<Incoming>) -> Response<ResponseBody> {
    let (parts, mut body) = req.into_parts();
    let mut body_bytes: u64 = 0;
    // Count frame by frame instead of collecting, so huge uploads stay cheap.
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    body_bytes += data.len() as u64;
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, "demo upstream: reading request body failed");
                return text(
                    StatusCode::BAD_REQUEST,
                    "Failed to read the request body.\n",
                );
            }
        }
    }

    // HeaderMap keeps names in first-seen order and repeated values together,
    // which is as close to wire order as hyper exposes.
    let headers: Vec<[String; 2]> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            [
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ]
        })
        .collect();
    let doc = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "version": format!("{:?}", parts.version),
        "headers": headers,
        "body_bytes": body_bytes,
    });
    match serde_json::to_vec_pretty(&doc) {
        Ok(json) => response(StatusCode::OK, "application/json", full(json)),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Could not encode JSON.\n",
        ),
    }
}

pub(super) fn escape_html(input: &str) -> String {
    // minijinja's escaper, the one the templates use.
    minijinja::HtmlEscape(input).to_string()
}

const PAGE_STYLE: &str = "\
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.4;overflow-wrap:anywhere}\
nav{display:flex;flex-wrap:wrap;gap:.25rem 1rem}\
table{border-collapse:collapse;width:100%;font-size:.9rem;table-layout:fixed}\
th{width:35%}\
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}\
td{font-family:ui-monospace,monospace;word-break:break-all}\
tr.identity td{background:#fff4c2;font-weight:600}\
.note{background:#f3f6fa;border-left:4px solid #4a7bd0;padding:.5rem 1rem}\
code{background:#f0f0f0;padding:0 .2rem}";

// Progressive enhancement only: writes via textContent, so echoed data can
// never become markup.
const PAGE_SCRIPT: &str = "\
(function(){\
var out=document.getElementById('ws-status');\
if(!out||!window.WebSocket)return;\
var ws=new WebSocket((location.protocol==='https:'?'wss://':'ws://')+location.host+'/ws');\
var sent='hello from the browser at '+new Date().toLocaleTimeString();\
out.textContent='Connecting to /ws\\u2026';\
ws.onopen=function(){ws.send(sent);};\
ws.onmessage=function(e){out.textContent='Echo received: '+e.data;ws.close();};\
ws.onerror=function(){out.textContent='WebSocket connection failed.';};\
})();";

fn is_identity_header(name: &str) -> bool {
    name.len() >= 7 && name[..7].eq_ignore_ascii_case("x-auth-")
}

pub(super) fn html_page(req: &Request<Incoming>) -> Response<ResponseBody> {
    let uri = req.uri();
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let headers = req.headers();
    let user = headers
        .get("x-auth-user")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());

    let mut page = String::with_capacity(4096);
    // Writing into a String cannot fail, so the fmt::Results are ignored.
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Demo app behind Gatehouse</title>\n<style>{PAGE_STYLE}</style>\n</head>\n<body>\n\
         <header><h1>Demo app behind Gatehouse</h1>\n\
         <nav aria-label=\"Demo app\"><a href=\"/\">Home</a><a href=\"/app/\">/app/</a><a href=\"/admin/\">/admin/</a>\
         <a href=\"/premium/\">/premium/</a><a href=\"/_auth/account\">Account</a>\
         <a href=\"/_auth/logout\">Sign out</a></nav></header>\n<main>\n"
    );
    match &user {
        Some(user) => {
            let _ = writeln!(
                page,
                "<p>Signed in as <strong>{}</strong>.</p>",
                escape_html(user)
            );
        }
        None => {
            page.push_str(
                "<p>You are not signed in (this is a public page). \
                 <a href=\"/_auth/login\">Sign in</a></p>\n",
            );
        }
    }
    let _ = write!(
        page,
        "<h2>Request</h2>\n<table>\n<tr><th>Method</th><td>{}</td></tr>\n\
         <tr><th>Path</th><td>{}</td></tr>\n<tr><th>Version</th><td>{:?}</td></tr>\n</table>\n\
         <h2>Headers received</h2>\n\
         <p class=\"note\">Highlighted <code>X-Auth-*</code> rows are identity headers that \
         Gatehouse injected after authenticating you. The app behind it learns who you are and \
         what roles you hold from these headers alone and never has to handle passwords.</p>\n\
         <table>\n<tr><th>Name</th><th>Value</th></tr>\n",
        escape_html(req.method().as_str()),
        escape_html(path_and_query),
        req.version(),
    );
    for (name, value) in headers {
        let class = if is_identity_header(name.as_str()) {
            " class=\"identity\""
        } else {
            ""
        };
        let _ = writeln!(
            page,
            "<tr{class}><td>{}</td><td>{}</td></tr>",
            escape_html(name.as_str()),
            escape_html(&String::from_utf8_lossy(value.as_bytes())),
        );
    }
    let json_link = match uri.query() {
        Some(query) => format!("{}?{query}&format=json", uri.path()),
        None => format!("{}?format=json", uri.path()),
    };
    let _ = write!(
        page,
        "</table>\n<p>The same request as JSON: <a href=\"{link}\">{link}</a></p>\n\
         <h2>WebSocket</h2>\n<p id=\"ws-status\">A WebSocket echo check runs here when \
         JavaScript is enabled.</p>\n</main>\n<script>{PAGE_SCRIPT}</script>\n</body>\n</html>\n",
        link = escape_html(&json_link),
    );
    response(StatusCode::OK, "text/html; charset=utf-8", full(page))
}
