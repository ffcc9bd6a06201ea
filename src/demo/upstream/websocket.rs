//! `GET /ws`: the WebSocket echo, closed when the demo app shuts down.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};

use super::{ResponseBody, empty, text};

/// Bound on the WebSocket closing handshake, so a peer that never answers our
/// Close frame cannot keep the echo task alive.
const WS_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// True if a comma-separated header (such as `Connection`) lists `token`.
fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
}

pub(super) fn websocket(
    mut req: Request<Incoming>,
    stop: watch::Receiver<bool>,
) -> Response<ResponseBody> {
    let headers = req.headers();
    let is_upgrade = req.method() == Method::GET
        && header_has_token(headers, header::CONNECTION, "upgrade")
        && header_has_token(headers, header::UPGRADE, "websocket");
    if !is_upgrade {
        let mut resp = text(
            StatusCode::UPGRADE_REQUIRED,
            "/ws is a WebSocket echo endpoint; connect with a WebSocket client.\n",
        );
        resp.headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        return resp;
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        // RFC 6455 §4.4: tell the client which version we do speak.
        let mut resp = text(
            StatusCode::UPGRADE_REQUIRED,
            "Unsupported WebSocket version; this server speaks version 13.\n",
        );
        resp.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return resp;
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return text(StatusCode::BAD_REQUEST, "Missing Sec-WebSocket-Key.\n");
    };
    let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) else {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Could not derive the accept key.\n",
        );
    };

    // Must be taken before the response goes out; it resolves once hyper has
    // written the 101 and handed the raw connection over.
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                echo_websocket(ws, stop).await;
            }
            Err(err) => tracing::debug!(error = %err, "demo upstream: WebSocket upgrade failed"),
        }
    });

    let mut resp = Response::new(empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    resp
}

async fn echo_websocket<S>(mut ws: WebSocketStream<S>, mut stop: watch::Receiver<bool>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        tokio::select! {
            // Also fires if the server is gone entirely (sender dropped). The
            // borrow guard is dropped inside, as it must not live across awaits.
            () = async { let _ = stop.wait_for(|stopping| *stopping).await; } => {
                let frame = CloseFrame { code: CloseCode::Away, reason: "server shutting down".into() };
                let _ = tokio::time::timeout(WS_CLOSE_TIMEOUT, async {
                    if ws.close(Some(frame)).await.is_ok() {
                        // Wait for the peer's Close so the handshake completes cleanly.
                        while let Some(Ok(_)) = ws.next().await {}
                    }
                })
                .await;
                return;
            }
            msg = ws.next() => match msg {
                Some(Ok(msg @ (Message::Text(_) | Message::Binary(_)))) => {
                    if let Err(err) = ws.send(msg).await {
                        tracing::debug!(error = %err, "demo upstream: WebSocket send failed");
                        return;
                    }
                }
                // tungstenite answers pings and Close frames itself; after a
                // Close the stream yields `None` once the handshake is done.
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    tracing::debug!(error = %err, "demo upstream: WebSocket read failed");
                    return;
                }
                None => return,
            },
        }
    }
}
