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
pub use request_ctx::RequestCtx;
