//! Requests written byte for byte, so that spellings a client library would tidy up reach the
//! server as they are.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone)]
pub struct Probe {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?}", self.method, self.target)?;
        for (k, v) in &self.headers {
            write!(f, " [{k}: {v}]")?;
        }
        Ok(())
    }
}

impl Probe {
    pub fn new(method: &str, target: &str) -> Probe {
        Probe {
            method: method.to_string(),
            target: target.to_string(),
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Probe {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sends the probe over a fresh HTTP/1.1 connection, marked with `X-Probe: id`, and
    /// returns the status (0 when the server closed without answering).
    pub async fn send(&self, to: SocketAddr, id: &str, cookie: Option<&str>) -> u16 {
        let host = to.to_string();
        let mut req = format!(
            "{} {} HTTP/1.1\r\n",
            self.method,
            self.target.replace("{host}", &host)
        );
        if !self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("host"))
        {
            req.push_str(&format!("Host: {host}\r\n"));
        }
        for (k, v) in &self.headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(c) = cookie {
            req.push_str(&format!("Cookie: {c}\r\n"));
        }
        req.push_str(&format!(
            "X-Probe: {id}\r\nAccept: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ));
        let mut stream = TcpStream::connect(to).await.unwrap();
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            let mut chunk = [0u8; 4096];
            loop {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        assert!(read.is_ok(), "no answer to {self} within 10 s");
        let head = String::from_utf8_lossy(&buf);
        head.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

/// One request over HTTP/2 with prior knowledge (h2c); the `:path` and `:method` as given.
pub async fn h2_probe(to: SocketAddr, method: &str, path: &str, id: &str, cookie: &str) -> u16 {
    let stream = TcpStream::connect(to).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(http::Method::from_bytes(method.as_bytes()).unwrap())
        .uri(format!("http://{to}{path}"))
        .header("x-probe", id)
        .header("cookie", cookie)
        .header("accept", "application/json")
        .body(Empty::<Bytes>::new())
        .unwrap();
    match send.send_request(req).await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            status
        }
        Err(_) => 0,
    }
}
