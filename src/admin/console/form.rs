//! Reading the console's form posts.

use std::collections::HashMap;

use http::header;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::admin::error::ApiError;

const MAX_FORM_BYTES: usize = 64 * 1024;

/// Fields of an `application/x-www-form-urlencoded` body (the last of repeated names wins).
#[derive(Debug, Default)]
pub struct Fields(HashMap<String, String>);

impl Fields {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A field's trimmed value, `None` when absent or blank.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// A checkbox: present means on.
    pub fn checked(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn from_query(uri: &http::Uri) -> Fields {
        Fields(
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .filter(|(_, v)| !v.trim().is_empty())
                .collect(),
        )
    }

    pub fn pairs(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }
}

pub async fn read(
    req: http::Request<Incoming>,
) -> Result<(http::request::Parts, Fields), ApiError> {
    let (parts, body) = req.into_parts();
    let ctype = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !ctype.starts_with("application/x-www-form-urlencoded") {
        return Err(ApiError::BadRequest("expected a form post".into()));
    }
    let bytes = Limited::new(body, MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|_| ApiError::TooLarge)?
        .to_bytes();
    let fields = url::form_urlencoded::parse(&bytes).into_owned().collect();
    Ok((parts, Fields(fields)))
}
