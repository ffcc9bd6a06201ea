//! Small pieces every HTTP-facing module shares: the response body type, request
//! classification (browser page load or API call), client address and scheme, cookies, CSRF,
//! HTML rendering, and the one look of our error answers.

pub mod body;
pub mod client;
pub mod cookies;
pub mod csrf;
pub mod error_page;
pub mod form;
pub mod negotiate;
pub mod render;
pub mod respond;

pub use body::{Body, BoxError};
pub use client::RequestCtx;
pub use error_page::ErrorPage;
