//! `[[identity_providers]]`: external OpenID Connect providers, every problem with its key
//! (`identity_providers[i].key`) and line.

use std::collections::HashSet;

use super::super::Secret;
use super::super::raw::{OneOrMany, RawIdentityProvider};
use super::super::settings::IdentityProvider;
use super::Ctx;

pub(super) fn providers(c: &mut Ctx<'_>, raw: &[RawIdentityProvider]) -> Vec<IdentityProvider> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, p) in raw.iter().enumerate() {
        let line = c.line(&p.id);
        let id = p.id.get_ref().clone();
        if !seen.insert(id.clone()) {
            c.problem(
                &format!("identity_providers[{i}].id"),
                Some(line),
                format!("{id:?} is used by an earlier provider; ids must be unique"),
            );
        }
        out.push(provider(c, i, line, p));
    }
    out
}

fn provider(c: &mut Ctx<'_>, i: usize, line: usize, p: &RawIdentityProvider) -> IdentityProvider {
    let key = |k: &str| format!("identity_providers[{i}].{k}");
    let id = p.id.get_ref().clone();
    let id_ok = !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !id_ok {
        c.problem(
            &key("id"),
            Some(line),
            format!("{id:?} must be 1 to 32 of a-z, 0-9, '-' and '_' (it appears in URLs)"),
        );
    }
    let name = required(c, &key("name"), line, c.text(&p.name, None));
    let client_id = required(c, &key("client_id"), line, c.text(&p.client_id, None));
    let issuer = match c.text(&p.issuer, None) {
        None => {
            c.problem(
                &key("issuer"),
                Some(line),
                "is required (the provider's issuer URL)",
            );
            String::new()
        }
        Some((v, l)) => match issuer_url(&v) {
            Ok(_) => v,
            Err(why) => {
                c.problem(&key("issuer"), l, format!("{v:?} {why}"));
                String::new()
            }
        },
    };
    let client_secret = match (
        c.text(&p.client_secret, None),
        c.path(&p.client_secret_file, None),
    ) {
        (Some(_), Some(_)) => {
            c.problem(
                &key("client_secret"),
                Some(line),
                "set client_secret or client_secret_file, not both",
            );
            Secret::new(String::new())
        }
        (Some((s, l)), None) if s.is_empty() => {
            c.problem(&key("client_secret"), l, "must not be empty");
            Secret::new(s)
        }
        (Some((s, _)), None) => Secret::new(s),
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(s) if !s.trim().is_empty() => Secret::new(s.trim_end().to_string()),
            Ok(_) => {
                let l = p.client_secret_file.as_ref().map(|s| c.line(s));
                c.problem(
                    &key("client_secret_file"),
                    l,
                    format!("{} is empty", path.display()),
                );
                Secret::new(String::new())
            }
            Err(e) => {
                let l = p.client_secret_file.as_ref().map(|s| c.line(s));
                c.problem(
                    &key("client_secret_file"),
                    l,
                    format!("cannot read {}: {e}", path.display()),
                );
                Secret::new(String::new())
            }
        },
        (None, None) => {
            c.problem(
                &key("client_secret"),
                Some(line),
                "is required (or client_secret_file)",
            );
            Secret::new(String::new())
        }
    };
    let scopes = match &p.scopes {
        None => vec!["openid".into(), "email".into(), "profile".into()],
        Some(s) => {
            let list: Vec<String> = match s.get_ref() {
                OneOrMany::One(v) => v.split_whitespace().map(str::to_string).collect(),
                OneOrMany::Many(v) => v.clone(),
            };
            if !list.iter().any(|s| s == "openid") {
                let l = c.line(s);
                c.problem(&key("scopes"), Some(l), "must include \"openid\"");
            }
            if list
                .iter()
                .any(|s| s.is_empty() || s.contains(char::is_whitespace))
            {
                let l = c.line(s);
                c.problem(&key("scopes"), Some(l), "scope names must be single words");
            }
            list
        }
    };
    let mut allowed_email_domains = Vec::new();
    for d in p.allowed_email_domains.iter().flatten() {
        let v = d
            .get_ref()
            .trim()
            .trim_start_matches('@')
            .to_ascii_lowercase();
        if v.is_empty() || v.contains(['@', '/', ' ']) || !v.contains('.') {
            let l = c.line(d);
            c.problem(
                &key("allowed_email_domains"),
                Some(l),
                format!("{:?} is not a domain like \"example.com\"", d.get_ref()),
            );
        } else {
            allowed_email_domains.push(v);
        }
    }
    let roles_claim = c.text(&p.roles_claim, None).map(|(v, _)| v);
    let mut role_map = Vec::new();
    if let Some(m) = &p.role_map {
        let l = c.line(m);
        if roles_claim.is_none() {
            c.problem(
                &key("role_map"),
                Some(l),
                "needs roles_claim (the claim to read)",
            );
        }
        for (from, to) in m.get_ref() {
            let roles: Vec<String> = match to {
                OneOrMany::One(r) => vec![r.clone()],
                OneOrMany::Many(r) => r.clone(),
            };
            let roles: Vec<String> = roles
                .iter()
                .map(|r| crate::accounts::normalize_role(r))
                .collect();
            // The same rule as a grant at sign-in, so a bad name fails here, not per sign-in.
            if let Some(bad) = roles
                .iter()
                .find(|r| crate::accounts::role_name_is_valid(r).is_err())
            {
                c.problem(
                    &key("role_map"),
                    Some(l),
                    format!(
                        "the role {bad:?} for {from:?} is not a role name (1-64 of a-z, 0-9, _ - . :)"
                    ),
                );
            }
            role_map.push((from.clone(), roles));
        }
    }
    IdentityProvider {
        id,
        name,
        issuer,
        client_id,
        client_secret,
        scopes,
        create_users: p.create_users.unwrap_or(false),
        allowed_email_domains,
        roles_claim,
        role_map,
        trust_provider_mfa: p.trust_provider_mfa.unwrap_or(false),
    }
}

fn required(c: &mut Ctx<'_>, key: &str, line: usize, v: Option<(String, Option<usize>)>) -> String {
    match v {
        Some((s, _)) if !s.trim().is_empty() => s,
        Some((_, l)) => {
            c.problem(key, l.or(Some(line)), "must not be empty");
            String::new()
        }
        None => {
            c.problem(key, Some(line), "is required");
            String::new()
        }
    }
}

/// An issuer: `https`, or `http` on a loopback host only (a provider on this machine, as in
/// tests); no query or fragment (OpenID Connect Discovery 1.0, section 4).
fn issuer_url(v: &str) -> Result<url::Url, &'static str> {
    let u = url::Url::parse(v).map_err(|_| "is not a URL")?;
    if u.query().is_some() || u.fragment().is_some() {
        return Err("must not have a query or fragment");
    }
    match u.scheme() {
        "https" => Ok(u),
        "http" if is_loopback(&u) => Ok(u),
        "http" => Err("must use https (plain http only for a loopback provider)"),
        _ => Err("is not an https URL"),
    }
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::from_toml;

    const OK: &str = "[[identity_providers]]\nid = \"corp\"\nname = \"Corp\"\nissuer = \"https://id.example.com\"\nclient_id = \"gh\"\nclient_secret = \"s\"\n";

    #[test]
    fn defaults_and_several_providers() {
        let two = format!(
            "{OK}[[identity_providers]]\nid = \"local\"\nname = \"Local\"\nissuer = \"http://127.0.0.1:9/\"\nclient_id = \"x\"\nclient_secret = \"y\"\nscopes = \"openid email\"\ncreate_users = true\nallowed_email_domains = [\"Example.COM\"]\nroles_claim = \"groups\"\nrole_map = {{ staff = \"editor\", admins = [\"admin\", \"ops\"] }}\ntrust_provider_mfa = true\n"
        );
        let s = from_toml(&two).unwrap();
        assert_eq!(s.identity_providers.len(), 2);
        let corp = s.identity_provider("corp").unwrap();
        assert_eq!(corp.scopes, ["openid", "email", "profile"]);
        assert!(!corp.create_users && !corp.trust_provider_mfa);
        let local = s.identity_provider("local").unwrap();
        assert_eq!(local.scopes, ["openid", "email"]);
        assert_eq!(local.allowed_email_domains, ["example.com"]);
        assert_eq!(
            local.role_map,
            [
                (
                    "admins".to_string(),
                    vec!["admin".to_string(), "ops".to_string()]
                ),
                ("staff".to_string(), vec!["editor".to_string()])
            ]
        );
        assert_eq!(format!("{:?}", local.client_secret), "[redacted]");
    }

    #[test]
    fn every_problem_names_key_and_line() {
        let src = format!(
            "{OK}[[identity_providers]]\nid = \"corp\"\nissuer = \"http://id.example.com\"\nclient_id = \"\"\nscopes = [\"email\"]\nallowed_email_domains = [\"nodot\"]\nrole_map = {{ a = \"b\" }}\n"
        );
        let err = from_toml(&src).unwrap_err().to_string();
        for want in [
            "identity_providers[1].id (line 8)",
            "identity_providers[1].name (line 8): is required",
            "identity_providers[1].issuer (line 9)",
            "identity_providers[1].client_id (line 10)",
            "identity_providers[1].client_secret (line 8)",
            "identity_providers[1].scopes (line 11)",
            "identity_providers[1].allowed_email_domains (line 12)",
            "identity_providers[1].role_map (line 13)",
        ] {
            assert!(err.contains(want), "missing {want:?} in {err}");
        }
        let err = from_toml(&format!("{OK}tenant = \"x\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 7") && err.contains("tenant"), "{err}");
    }
}
