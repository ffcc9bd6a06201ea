//! Talking to the upstream app: the pooled client and the header rules at the trust boundary.

pub mod headers;
mod pool;
mod upstream;

pub use upstream::{TunnelGuard, Upstream, UpstreamConfigError, UpstreamError};
