//! Small pieces every HTTP-facing module shares: the response body type, request
//! classification (browser page load or API call), client address and scheme, cookies, CSRF,
//! and HTML rendering.

pub mod body;
pub mod client;
pub mod cookies;
pub mod csrf;
pub mod form;
pub mod negotiate;
pub mod render;
pub mod respond;

pub use body::{Body, BoxError};
pub use client::RequestCtx;
