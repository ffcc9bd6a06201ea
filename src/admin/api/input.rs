//! Reading API input strictly: JSON bodies (415 when not JSON, 413 when too large, 400 when
//! malformed) and query strings, where unknown names are refused with 422 naming them.

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderMap, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use crate::admin::error::ApiError;
use crate::store::Ts;

/// API bodies are small.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub type Object = Map<String, Value>;

/// Reads a JSON object body.
pub async fn json_object(headers: &HeaderMap, body: Incoming) -> Result<Object, ApiError> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = ctype.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes: Bytes = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|_| ApiError::TooLarge)?
        .to_bytes();
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        )),
        Err(e) => Err(ApiError::BadRequest(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// Refuses keys outside `allowed`, naming all of them.
pub fn only_known(obj: &Object, allowed: &[&str]) -> Result<(), ApiError> {
    let unknown: Vec<String> = obj
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .cloned()
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            format!("unknown fields: {}", unknown.join(", ")),
            unknown,
        ))
    }
}

pub fn string(obj: &Object, key: &str) -> Result<Option<String>, ApiError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid(key, "must be a string")),
    }
}

pub fn required_string(obj: &Object, key: &str) -> Result<String, ApiError> {
    string(obj, key)?.ok_or_else(|| ApiError::invalid(key, "is required"))
}

/// A nullable text field: absent → `None`; `null` or blank → `Some(None)` (clear).
pub fn nullable_text(
    obj: &Object,
    key: &str,
    max: usize,
) -> Result<Option<Option<String>>, ApiError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.chars().count() > max || t.chars().any(char::is_control) {
                return Err(ApiError::invalid(
                    key,
                    format!("must be at most {max} characters without control characters"),
                ));
            }
            Ok(Some((!t.is_empty()).then(|| t.to_string())))
        }
        Some(_) => Err(ApiError::invalid(key, "must be a string or null")),
    }
}

pub fn boolean(obj: &Object, key: &str) -> Result<Option<bool>, ApiError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::invalid(key, "must be true or false")),
    }
}

pub fn integer(obj: &Object, key: &str) -> Result<Option<i64>, ApiError> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| ApiError::invalid(key, "must be an integer")),
    }
}

/// An RFC 3339 time, or `null`.
pub fn time(obj: &Object, key: &str) -> Result<Option<Ts>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => parse_time(key, s).map(Some),
        Some(_) => Err(ApiError::invalid(key, "must be an RFC 3339 time or null")),
    }
}

pub fn parse_time(key: &str, s: &str) -> Result<Ts, ApiError> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| Ts(t.with_timezone(&chrono::Utc)))
        .map_err(|_| ApiError::invalid(key, format!("{s:?} is not an RFC 3339 time")))
}

/// The query string as name → value (the last of repeated names wins); unknown names → 422.
pub fn query(uri: &http::Uri, allowed: &[&str]) -> Result<Query, ApiError> {
    let pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let mut unknown: Vec<String> = pairs
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    unknown.dedup();
    if !unknown.is_empty() {
        return Err(ApiError::unprocessable(
            format!("unknown query parameters: {}", unknown.join(", ")),
            unknown,
        ));
    }
    Ok(Query(pairs.into_iter().collect()))
}

/// A parsed query string.
#[derive(Debug, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    pub fn from_pairs<'a>(pairs: impl Iterator<Item = (&'a String, &'a String)>) -> Query {
        Query(pairs.map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    pub fn text(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }

    pub fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(key).map(|s| s.to_ascii_lowercase()) {
            None => Ok(None),
            Some(v) if v == "true" || v == "1" => Ok(Some(true)),
            Some(v) if v == "false" || v == "0" => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid(key, "must be true or false")),
        }
    }

    pub fn int(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(ApiError::invalid(
                    key,
                    format!("must be an integer from {min} to {max}"),
                )),
            },
        }
    }

    pub fn time(&self, key: &str) -> Result<Option<Ts>, ApiError> {
        self.0.get(key).map(|v| parse_time(key, v)).transpose()
    }
}
