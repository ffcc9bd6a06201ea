//! Reading API input strictly: JSON bodies (415 when not JSON, 413 when too large, 400 when
//! malformed) parsed into the typed shapes of [`crate::admin::views`], and query strings; unknown
//! names, missing fields and values of the wrong type are refused with 422 naming them.

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderMap, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, schema::Schema};

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

/// Reads a JSON object body into its typed shape (see [`body`]).
pub async fn read<T: DeserializeOwned + ToSchema>(
    headers: &HeaderMap,
    body: Incoming,
) -> Result<T, ApiError> {
    self::body(json_object(headers, body).await?)
}

/// Parses a body into its typed shape (a `views` type): names outside the type's schema are
/// refused first, all of them named; then a missing required field or a value of the wrong type,
/// named by its path (`field`, `field.inner`, `list[2]`). All 422.
pub fn body<T: DeserializeOwned + ToSchema>(obj: Object) -> Result<T, ApiError> {
    let (body, unknown) = body_and_unknown(obj)?;
    if unknown.is_empty() {
        Ok(body)
    } else {
        Err(ApiError::unprocessable(
            format!("unknown fields: {}", unknown.join(", ")),
            unknown,
        ))
    }
}

/// Like [`body`], but hands back the unknown names (sorted) instead of refusing them, for a
/// caller that names them together with other refused fields. The typed value holds the
/// known fields only.
pub fn body_and_unknown<T: DeserializeOwned + ToSchema>(
    mut obj: Object,
) -> Result<(T, Vec<String>), ApiError> {
    let (known, required) = schema_fields::<T>();
    let unknown: Vec<String> = obj.keys().filter(|k| !known.contains(k)).cloned().collect();
    for k in &unknown {
        obj.remove(k);
    }
    if let Some(missing) = required.iter().find(|f| !obj.contains_key(*f)) {
        return Err(ApiError::invalid(missing, "is required"));
    }
    let body = serde_path_to_error::deserialize(Value::Object(obj)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        if path == "." {
            ApiError::unprocessable(message, Vec::new())
        } else {
            ApiError::invalid(&path, message)
        }
    })?;
    Ok((body, unknown))
}

/// The property names and required properties of a body type, from its OpenAPI schema (the one
/// the document shows).
fn schema_fields<T: ToSchema>() -> (Vec<String>, Vec<String>) {
    match T::schema() {
        RefOr::T(Schema::Object(o)) => (o.properties.keys().cloned().collect(), o.required),
        _ => (Vec::new(), Vec::new()),
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

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        limits: Vec<i64>,
    }

    fn obj(v: Value) -> Object {
        match v {
            Value::Object(m) => m,
            _ => Object::new(),
        }
    }

    fn refused(r: Result<Outer, ApiError>) -> (String, Vec<String>) {
        match r {
            Err(e @ ApiError::Unprocessable { .. }) => (e.to_string(), e.fields().to_vec()),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_wrong_type_deep_inside_is_named_by_its_path() {
        let (message, fields) = refused(body(obj(
            json!({"name": "x", "inner": {"limits": [1, "two"]}}),
        )));
        assert_eq!(fields, ["inner.limits[1]"]);
        assert!(
            message.starts_with("inner.limits[1]: invalid type"),
            "{message}"
        );
        let (_, fields) = refused(body(obj(json!({"name": 5}))));
        assert_eq!(fields, ["name"]);
    }

    #[test]
    fn unknown_and_missing_fields_are_named() {
        let (message, fields) = refused(body(obj(json!({"name": "x", "b": 1, "a": 2}))));
        assert_eq!(fields, ["a", "b"]);
        assert_eq!(message, "unknown fields: a, b");
        let (message, fields) = refused(body(obj(json!({"inner": null}))));
        assert_eq!(
            (message.as_str(), fields),
            ("name: is required", vec!["name".to_string()])
        );
        let (ok, unknown) = body_and_unknown::<Outer>(obj(json!({"name": "x", "z": 1}))).unwrap();
        assert_eq!((ok.name.as_str(), unknown), ("x", vec!["z".to_string()]));
        assert!(ok.inner.is_none());
    }
}
