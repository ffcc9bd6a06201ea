//! Small pieces every HTTP-facing module shares: the response body type, request
//! classification (browser page load or API call), the request context (client address,
//! scheme, host, request id), cookies, CSRF, HTML rendering, and the one look of our error
//! answers.

pub mod body;
pub mod cookies;
pub mod csrf;
pub mod error_page;
pub mod form;
pub mod negotiate;
pub mod render;
pub mod request_ctx;
pub mod respond;

pub use body::{Body, BoxError};
pub use error_page::ErrorPage;
pub use request_ctx::{RequestCtx, RequestId};

/// Bytes as text: borrowed when they are UTF-8 (then, and only then, the result is
/// `Cow::Borrowed`), else read lossily. `from_utf8` first, because the lossy reading validates
/// byte by byte and costs several times as much on the text that nearly every input is.
pub fn utf8_or_lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}
