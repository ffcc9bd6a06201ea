//! The ID token, once the code exchange has returned it: checked by the `openidconnect` crate
//! (signature against the provider's keys, issuer, audience, expiry on our clock, nonce), its
//! `at_hash` tied to the access token that came with it, and its claims read into an
//! [`ExternalIdentity`] — including the two the crate does not model: `amr`, which tells
//! whether the provider used more than one factor, and the provider's configured roles claim.

use base64::Engine;
use openidconnect::core::CoreIdToken;
use openidconnect::{
    AccessToken, AccessTokenHash, ClaimsVerificationError, Nonce, SignatureVerificationError,
};

use super::{ExternalIdentity, IdTokenProblem, OidcError, Rp};
use crate::config::IdentityProvider;
use crate::store::Ts;

/// Verifies `id_token` with `client`'s keys against the flow's `nonce` at time `now`, checks
/// its `at_hash` (when present) against `access_token`, and reads the identity from it.
pub(super) fn verify(
    p: &IdentityProvider,
    client: &Rp,
    id_token: &CoreIdToken,
    access_token: &AccessToken,
    nonce: &Nonce,
    now: Ts,
) -> Result<ExternalIdentity, OidcError> {
    let verifier = client.id_token_verifier().set_time_fn(move || now.0);
    let claims = id_token
        .claims(&verifier, nonce)
        .map_err(|e| id_token_error(&e))?;
    if let Some(expected) = claims.access_token_hash() {
        let alg = id_token
            .signing_alg()
            .map_err(refused(IdTokenProblem::Signature))?;
        let key = id_token
            .signing_key(&verifier)
            .map_err(refused(IdTokenProblem::Signature))?;
        let actual = AccessTokenHash::from_token(access_token, alg, key)
            .map_err(refused(IdTokenProblem::AccessTokenHash))?;
        if actual != *expected {
            return Err(refused(IdTokenProblem::AccessTokenHash)(
                "the access token was swapped",
            ));
        }
    }
    let extra = payload(id_token);
    let groups = p
        .roles_claim
        .as_deref()
        .map(|c| strings(extra.get(c)))
        .unwrap_or_default();
    let amr = strings(extra.get("amr"));
    Ok(ExternalIdentity {
        provider: p.id.clone(),
        subject: claims.subject().to_string(),
        email: claims.email().map(|e| e.to_string()),
        email_verified: claims.email_verified().unwrap_or(false),
        preferred_username: claims.preferred_username().map(|u| u.to_string()),
        given_name: claims
            .given_name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string()),
        family_name: claims
            .family_name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string()),
        groups,
        mfa: shows_mfa(&amr),
    })
}

/// The refusal for `problem`, with the crate's message as its detail.
fn refused<E: std::fmt::Display>(problem: IdTokenProblem) -> impl FnOnce(E) -> OidcError {
    move |e| OidcError::IdToken {
        problem,
        detail: e.to_string(),
    }
}

pub(super) fn names_unknown_key(token: &CoreIdToken, client: &Rp) -> bool {
    matches!(
        token.signing_key(&client.id_token_verifier()),
        Err(SignatureVerificationError::NoMatchingKey)
    )
}

fn id_token_error(e: &ClaimsVerificationError) -> OidcError {
    let problem = match e {
        ClaimsVerificationError::Expired(_) => IdTokenProblem::Expired,
        ClaimsVerificationError::InvalidNonce(_) => IdTokenProblem::Nonce,
        ClaimsVerificationError::InvalidIssuer(_) => IdTokenProblem::Issuer,
        ClaimsVerificationError::InvalidAudience(_) => IdTokenProblem::Audience,
        ClaimsVerificationError::SignatureVerification(_) => IdTokenProblem::Signature,
        _ => IdTokenProblem::Other,
    };
    refused(problem)(e)
}

/// The claims of a token the crate has already verified, as JSON, for the claims it does not
/// model (`amr` as a list of strings, the configured roles claim).
fn payload(token: &CoreIdToken) -> serde_json::Map<String, serde_json::Value> {
    let compact = token.to_string();
    compact
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.trim_end_matches('='))
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Whether an `amr` claim (RFC 8176) shows more than one factor: `mfa` itself, or methods
/// from two different factor classes (something known, held, or inherent). Methods that are
/// not factors of their own (`kba` aside, `rba`, `geo`, `user`, `wia`...) never count, so
/// `["pwd", "rba"]` is one factor.
fn shows_mfa(amr: &[String]) -> bool {
    #[derive(PartialEq)]
    enum Class {
        Know,
        Have,
        Are,
    }
    let class = |m: &str| match m {
        "pwd" | "pin" | "kba" => Some(Class::Know),
        "otp" | "sms" | "tel" | "hwk" | "swk" | "sc" | "pop" => Some(Class::Have),
        "fpt" | "face" | "iris" | "retina" | "vbm" => Some(Class::Are),
        _ => None,
    };
    if amr.iter().any(|m| m == "mfa") {
        return true;
    }
    let classes: Vec<Class> = amr.iter().filter_map(|m| class(m)).collect();
    classes.iter().any(|a| classes.iter().any(|b| a != b))
}

/// A claim that is a string or a list of strings.
fn strings(v: Option<&serde_json::Value>) -> Vec<String> {
    match v {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amr_shows_mfa() {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(shows_mfa(&v(&["mfa"])));
        assert!(shows_mfa(&v(&["pwd", "otp"])));
        assert!(!shows_mfa(&v(&["pwd"])));
        assert!(!shows_mfa(&v(&["pwd", "pwd"])));
        assert!(!shows_mfa(&[]));
        // Not factors of their own, or two of one class: one factor.
        assert!(!shows_mfa(&v(&["pwd", "rba"])));
        assert!(!shows_mfa(&v(&["pwd", "kba"])));
        assert!(!shows_mfa(&v(&["pwd", "user", "geo"])));
        assert!(!shows_mfa(&v(&["otp", "hwk"])));
        assert!(shows_mfa(&v(&["hwk", "fpt"])));
    }

    #[test]
    fn claims_as_string_lists() {
        let j = serde_json::json!({ "a": "x", "b": ["y", 3, "z"], "c": 1 });
        assert_eq!(strings(j.get("a")), ["x"]);
        assert_eq!(strings(j.get("b")), ["y", "z"]);
        assert!(strings(j.get("c")).is_empty() && strings(j.get("d")).is_empty());
    }
}
