//! Form posts and query strings (`application/x-www-form-urlencoded`, via the `url` crate).

use std::collections::HashMap;

use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

/// Forms are small; anything bigger is refused before it is read.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// Why a form body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("expected an application/x-www-form-urlencoded body")]
    NotAForm,
    #[error("the form is larger than {MAX_FORM_BYTES} bytes")]
    TooLarge,
}

impl FormError {
    pub fn status(self) -> StatusCode {
        match self {
            FormError::NotAForm => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            FormError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

/// Decoded fields; of repeated names the last wins.
#[derive(Debug, Default)]
pub struct Form(HashMap<String, String>);

impl Form {
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

    pub fn pairs(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    /// Drops blank fields (filter forms send every input, empty or not).
    pub fn without_blanks(mut self) -> Form {
        self.0.retain(|_, v| !v.trim().is_empty());
        self
    }
}

/// Reads a form body, bounded in size.
pub async fn read(req: Request<Incoming>) -> Result<(http::request::Parts, Form), FormError> {
    let (parts, body) = req.into_parts();
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| {
            c.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(FormError::NotAForm);
    }
    let bytes = Limited::new(body, MAX_FORM_BYTES)
        .collect()
        .await
        .map_err(|_| FormError::TooLarge)?
        .to_bytes();
    Ok((
        parts,
        Form(url::form_urlencoded::parse(&bytes).into_owned().collect()),
    ))
}

/// The query string as fields.
pub fn query(uri: &http::Uri) -> Form {
    Form(
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect(),
    )
}
