//! The HTTP client the `openidconnect` crate talks to providers through: hyper over rustls
//! (ring), never following redirects (an open redirect at the provider must not become a
//! request from us to anywhere), with a deadline and a size limit on every answer.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Discovery documents, key sets and token answers are small.
const MAX_ANSWER: usize = 1024 * 1024;
const DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ProviderHttpError {
    #[error("cannot reach the provider: {0}")]
    Send(String),
    #[error("the provider did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the provider's answer is unreadable or over {MAX_ANSWER} bytes")]
    Body,
    #[error(
        "{0} is plain http and not on this machine: the client secret and the keys go over https only"
    )]
    Insecure(String),
}

/// Plain http only to this machine (a provider run beside Gatehouse, as in tests): the
/// issuer is checked when the config loads, but the token and keys endpoints come from the
/// provider's discovery document and are checked here, on every request.
fn allowed(uri: &http::Uri) -> bool {
    match uri.scheme_str() {
        Some("https") => true,
        Some("http") => uri.host().is_some_and(|h| {
            let h = h.trim_start_matches('[').trim_end_matches(']');
            h.eq_ignore_ascii_case("localhost")
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }),
        _ => false,
    }
}

#[derive(Clone, Debug)]
pub struct ProviderHttp {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl ProviderHttp {
    pub fn new() -> ProviderHttp {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(DEADLINE));
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| b.with_root_certificates(roots).with_no_client_auth())
            // ring supports the default versions; this arm keeps the code panic-free.
            .unwrap_or_else(|_| {
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            });
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        // No pooling: sign-ins are rare, and a pooled connection would belong to the runtime
        // of whichever worker opened it.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        ProviderHttp { client }
    }

    /// One request, as the `openidconnect` crate hands it over.
    pub async fn send(
        &self,
        req: openidconnect::HttpRequest,
    ) -> Result<openidconnect::HttpResponse, ProviderHttpError> {
        if !allowed(req.uri()) {
            return Err(ProviderHttpError::Insecure(req.uri().to_string()));
        }
        let (parts, body) = req.into_parts();
        let req = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| ProviderHttpError::Send(e.to_string()))?;
            let (parts, body) = resp.into_parts();
            let bytes = Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map_err(|_| ProviderHttpError::Body)?
                .to_bytes();
            Ok(http::Response::from_parts(parts, bytes.to_vec()))
        };
        tokio::time::timeout(DEADLINE, exchange)
            .await
            .map_err(|_| ProviderHttpError::Timeout(DEADLINE))?
    }
}

/// A named future type (rather than a closure) keeps the handlers' futures `Send` for every
/// lifetime, which hyper's connection tasks need.
impl<'c> openidconnect::AsyncHttpClient<'c> for ProviderHttp {
    type Error = ProviderHttpError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<openidconnect::HttpResponse, Self::Error>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

impl Default for ProviderHttp {
    fn default() -> Self {
        ProviderHttp::new()
    }
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn plain_http_only_to_this_machine() {
        let ok = |u: &str| allowed(&u.parse().unwrap());
        assert!(ok("https://idp.example/token"));
        assert!(ok("http://127.0.0.1:8080/token"));
        assert!(ok("http://[::1]:8080/jwks"));
        assert!(ok("http://localhost/jwks"));
        assert!(!ok("http://idp.example/token"));
        assert!(!ok("http://10.0.0.1/token"));
        assert!(!ok("ftp://idp.example/x"));
    }
}
