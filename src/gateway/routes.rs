//! Route matching and the authorization decision.

use http::Method;

use super::GateError;
use super::error::Missing;
use super::target::Target;
use crate::config::{Access, RouteRule};
use crate::session::Session;
use crate::store::Ts;

/// The rule that applies to a request (`None`: no rule matched, the default applies).
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    pub rule: Option<&'a RouteRule>,
    pub access: Access,
}

/// First matching rule wins; unmatched paths get `default`.
pub fn decide<'a>(
    routes: &'a [RouteRule],
    default: Access,
    method: &Method,
    path: &str,
) -> Decision<'a> {
    match routes.iter().find(|r| r.matches(method, path)) {
        Some(rule) => Decision {
            rule: Some(rule),
            access: rule.access,
        },
        None => Decision {
            rule: None,
            access: default,
        },
    }
}

/// Authorizes every reading of the target: each method the app might run (see
/// [`Target::methods`]) on each path form. The strictest decision wins: the request passes only
/// if every reading would.
pub fn authorize_all(
    routes: &[RouteRule],
    default: Access,
    target: &Target,
    session: Option<&Session>,
    now: Ts,
) -> Result<(), GateError> {
    for path in target.match_paths() {
        for method in &target.methods {
            decide(routes, default, method, path).authorize(session, now)?;
        }
    }
    Ok(())
}

impl Decision<'_> {
    pub fn authorize(&self, session: Option<&Session>, now: Ts) -> Result<(), GateError> {
        match self.access {
            Access::Public => Ok(()),
            Access::Deny => Err(GateError::Denied),
            Access::Authenticated => {
                let s = session.ok_or(GateError::Unauthenticated)?;
                let Some(rule) = self.rule else { return Ok(()) };
                let id = &s.identity;
                if !rule.roles.is_empty() && !id.has_any_role(&rule.roles, now) {
                    return Err(GateError::Forbidden(Missing::Role(rule.roles.clone())));
                }
                if !rule.tiers.is_empty() && !id.tier.is_some_and(|t| rule.tiers.contains(&t)) {
                    return Err(GateError::Forbidden(Missing::Tier(rule.tiers.clone())));
                }
                if rule.require_verified && !id.is_verified {
                    return Err(GateError::Forbidden(Missing::VerifiedAddress));
                }
                if rule.require_2fa && !s.twofa_verified {
                    return Err(GateError::Forbidden(Missing::TwoFactor));
                }
                Ok(())
            }
        }
    }
}
