//! The upstream client: HTTP/1.1 over plain TCP or rustls, on keep-alive connections from
//! [`super::pool`]. Bodies stream both ways; nothing is buffered whole. Upgrades (WebSocket)
//! are spliced after the upstream answers `101`.

use std::time::Duration;

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;

use super::pool::{Pool, PooledBody, SendError};

use crate::config::UpstreamSettings;
use crate::web::Body;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream refused or reset the connection: {0}")]
    Unreachable(String),
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot build upstream request: {0}")]
    BadRequest(String),
    #[error("upstream broke the protocol: {0}")]
    Protocol(&'static str),
}

/// Completes when an upgraded connection must be closed (its session ended).
pub type TunnelGuard = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamConfigError {
    #[error("cannot read upstream.ca_file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("TLS setup for the upstream failed: {0}")]
    Tls(String),
}

#[derive(Clone)]
pub struct Upstream {
    pool: std::sync::Arc<Pool>,
    /// `authority` as the `Host` value, made once.
    authority_value: Option<HeaderValue>,
    /// Path prefix of the upstream URL, without a trailing slash ("" for "/").
    base_path: String,
    response_timeout: Duration,
    connect_timeout: Duration,
    preserve_host: bool,
    /// Which configuration this client was built for: a worker thread's own client is
    /// replaced when a reload brings another (see [`Upstream::local`]).
    generation: u64,
    settings: std::sync::Arc<UpstreamSettings>,
}

/// Numbers the clients built from a configuration; a worker's copy shares its number.
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

thread_local! {
    /// A worker thread's own client (see `server.workers`), so its requests use connections
    /// that its own runtime drives.
    static LOCAL: std::cell::Cell<Option<&'static Upstream>> = const { std::cell::Cell::new(None) };
}

impl Upstream {
    /// Makes `self` the client that [`Upstream::local`] returns on this thread. One per worker
    /// thread for the life of the process, so it is leaked rather than reference-counted.
    pub fn install_for_this_thread(self) {
        let leaked: &'static Upstream = Box::leak(Box::new(self));
        LOCAL.with(|l| l.set(Some(leaked)));
    }

    /// This thread's own client if it has one, else the shared one. After a reload changed
    /// the upstream settings, a worker thread builds its own client for them on its next
    /// request; the one it replaces is kept (reloads are rare), and its idle connections close
    /// after the pool's idle timeout.
    pub fn local(&self) -> &Upstream {
        LOCAL.with(|l| match l.get() {
            None => self,
            Some(mine) if mine.generation == self.generation => mine,
            Some(_) => match self.for_worker() {
                Ok(fresh) => {
                    let leaked: &'static Upstream = Box::leak(Box::new(fresh));
                    l.set(Some(leaked));
                    leaked
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot rebuild this worker's upstream client");
                    self
                }
            },
        })
    }

    /// A client of its own for a worker thread, with the same settings (and generation).
    pub fn for_worker(&self) -> Result<Upstream, UpstreamConfigError> {
        let mut fresh = Upstream::new(&self.settings)?;
        fresh.generation = self.generation;
        Ok(fresh)
    }

    pub fn new(s: &UpstreamSettings) -> Result<Upstream, UpstreamConfigError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(s.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let tls = tls_config(s)?;
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let uri: Uri = s
            .url
            .as_str()
            .parse()
            .map_err(|e: http::uri::InvalidUri| UpstreamConfigError::Tls(e.to_string()))?;
        let scheme = uri.scheme().cloned().unwrap_or(Scheme::HTTP);
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| UpstreamConfigError::Tls("upstream URL has no host".into()))?;
        let origin = Uri::builder()
            .scheme(scheme)
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| UpstreamConfigError::Tls(e.to_string()))?;
        Ok(Upstream {
            pool: Pool::new(
                connector,
                origin,
                s.pool_max_idle_per_host,
                POOL_IDLE_TIMEOUT,
            ),
            authority_value: HeaderValue::from_str(authority.as_str()).ok(),
            base_path: uri.path().trim_end_matches('/').to_string(),
            response_timeout: s.response_timeout,
            connect_timeout: s.connect_timeout,
            preserve_host: s.preserve_host,
            generation: GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            settings: std::sync::Arc::new(s.clone()),
        })
    }

    /// Sends a request (headers already rewritten) and returns the response head with a
    /// streaming body. `host` is the authority the browser used.
    ///
    /// `guard` is awaited beside a bridged upgrade; when it completes, both sides are closed.
    pub async fn forward(
        &self,
        mut req: Box<Request<Incoming>>,
        host: Option<&HeaderValue>,
        guard: Option<TunnelGuard>,
    ) -> Result<Response<Body>, UpstreamError> {
        let client_upgrade = hyper::upgrade::on(&mut *req);
        // Without a base path the request's own path and query are reused as they are.
        let path_and_query = match (req.uri().path_and_query(), self.base_path.is_empty()) {
            (Some(pq), true) => pq.clone(),
            (pq, _) => {
                let pq = pq.map_or("/", PathAndQuery::as_str);
                PathAndQuery::try_from(format!("{}{}", self.base_path, pq))
                    .map_err(|e| UpstreamError::BadRequest(e.to_string()))?
            }
        };
        // Origin form: the connection already goes to the upstream's authority.
        *req.uri_mut() = Uri::from(path_and_query);
        *req.version_mut() = Version::HTTP_11;
        let host_value = match (self.preserve_host, host) {
            (true, Some(h)) => Some(h.clone()),
            _ => self.authority_value.clone(),
        };
        if let Some(h) = host_value {
            req.headers_mut().insert(header::HOST, h);
        }
        let wants_upgrade = super::headers::is_upgrade(req.headers());
        let mut resp = self.send(req).await?;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if !wants_upgrade {
                // Nothing was asked to switch; bridging would open a tunnel no rule has seen.
                return Err(UpstreamError::Protocol(
                    "101 to a request without an upgrade",
                ));
            }
            // The connection becomes the tunnel; it never goes back to the pool.
            resp.body_mut().detach();
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            let guard = guard.unwrap_or_else(|| Box::pin(std::future::pending()));
            tokio::spawn(async move {
                match tokio::try_join!(client_upgrade, upstream_upgrade) {
                    Ok((client, upstream)) => {
                        let mut client = TokioIo::new(client);
                        let mut upstream = TokioIo::new(upstream);
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                            () = guard => tracing::debug!("tunnel closed: its session ended"),
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "upgrade did not complete"),
                }
            });
        }
        Ok(resp.map(|b| b.map_err(|e| Box::new(e) as crate::web::BoxError).boxed()))
    }
}

impl Upstream {
    /// One deadline, `response_timeout`, for the response head; the connector bounds making a
    /// connection by `connect_timeout` on its own. (A deadline over their sum answered a silent
    /// upstream only after both had run out.) In steady state the connection is pooled, so the
    /// whole deadline is the upstream's, at the cost of one timer per request.
    async fn send(
        &self,
        req: Box<Request<Incoming>>,
    ) -> Result<Response<PooledBody>, UpstreamError> {
        match tokio::time::timeout(self.response_timeout, self.pool.send(req)).await {
            Err(_) => Err(UpstreamError::Timeout(self.response_timeout)),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(SendError::Connect(e))) => Err(classify(&*e, self.connect_timeout)),
            Ok(Err(SendError::Http(e))) => Err(classify(&e, self.connect_timeout)),
        }
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("url", &self.settings.url)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// How long an unused upstream connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

fn classify(e: &(dyn std::error::Error + 'static), connect_timeout: Duration) -> UpstreamError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return UpstreamError::Timeout(connect_timeout);
        }
        if s.to_string().contains("timed out") {
            return UpstreamError::Timeout(connect_timeout);
        }
        source = s.source();
    }
    let mut msg = e.to_string();
    if let Some(inner) = e.source() {
        msg = format!("{msg}: {inner}");
    }
    UpstreamError::Unreachable(msg)
}

fn tls_config(s: &UpstreamSettings) -> Result<rustls::ClientConfig, UpstreamConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    match &s.ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| UpstreamConfigError::CaFile {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            let certs =
                crate::server::tls::parse_certs(&pem).map_err(|e| UpstreamConfigError::CaFile {
                    path: path.display().to_string(),
                    message: e,
                })?;
            for c in certs {
                roots.add(c).map_err(|e| UpstreamConfigError::CaFile {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamConfigError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(cfg)
}
