//! Reading the console's form posts.

use hyper::body::Incoming;

use crate::admin::error::ApiError;
use crate::web::form::FormError;

/// The console's forms and filter queries.
pub type Fields = crate::web::form::Form;

/// Filter fields from the query string, blank ones dropped.
pub fn query(uri: &http::Uri) -> Fields {
    crate::web::form::query(uri).without_blanks()
}

pub async fn read(
    req: http::Request<Incoming>,
) -> Result<(http::request::Parts, Fields), ApiError> {
    crate::web::form::read(req).await.map_err(|e| match e {
        FormError::NotAForm => ApiError::BadRequest("expected a form post".into()),
        FormError::TooLarge => ApiError::TooLarge,
    })
}
