//! `gatehouse role ...`

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;

use super::Ctx;
use super::output::{print_json, table};
use crate::store::Ts;

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Grant a role, optionally until a time (RFC 3339) or for a duration (e.g. 30d)
    Grant {
        user: String,
        role: String,
        #[arg(long, value_name = "TIME|DURATION")]
        expires: Option<String>,
    },
    /// Revoke a role
    Revoke { user: String, role: String },
    /// List a user's roles
    List {
        user: String,
        #[arg(long)]
        json: bool,
    },
}

/// An RFC 3339 time, or a duration from now.
pub(super) fn parse_expiry(s: &str, now: Ts) -> anyhow::Result<Ts> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(Ts(t.with_timezone(&chrono::Utc)));
    }
    let d = humantime::parse_duration(s).map_err(|_| {
        anyhow::anyhow!("--expires {s:?} is neither an RFC 3339 time nor a duration like 30d")
    })?;
    let d = chrono::Duration::from_std(d).context("--expires is too far away")?;
    Ok(Ts(now.0 + d))
}

pub async fn run(ctx: &Ctx, cmd: &RoleCommand) -> anyhow::Result<ExitCode> {
    let acc = &ctx.accounts;
    match cmd {
        RoleCommand::Grant {
            user,
            role,
            expires,
        } => {
            let u = acc.find(user).await?;
            let expires_at = expires
                .as_deref()
                .map(|e| parse_expiry(e, acc.now()))
                .transpose()?;
            let r = acc.grant_role(u.id, role, expires_at, None).await?;
            match r.expires_at {
                Some(t) => println!("granted {} to {} until {t}", r.role_name, u.username),
                None => println!("granted {} to {}", r.role_name, u.username),
            }
        }
        RoleCommand::Revoke { user, role } => {
            let u = acc.find(user).await?;
            acc.revoke_role(u.id, role, None).await?;
            println!("revoked {role} from {}", u.username);
        }
        RoleCommand::List { user, json } => {
            let u = acc.find(user).await?;
            let rows = acc.roles(u.id).await?;
            let now = acc.now();
            if *json {
                let v: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "role": r.role_name,
                            "granted_at": r.granted_at,
                            "granted_by": r.granted_by,
                            "expires_at": r.expires_at,
                            "is_active": r.is_active,
                            "in_force": r.in_force(now),
                        })
                    })
                    .collect();
                print_json(
                    &serde_json::json!({ "user_id": u.id, "roles": v, "effective": acc.effective_roles(&u).await? }),
                )?;
            } else {
                let t: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.role_name.clone(),
                            if r.in_force(now) {
                                "yes".into()
                            } else {
                                "no".into()
                            },
                            r.granted_at.to_string(),
                            r.expires_at.map_or_else(|| "-".into(), |t| t.to_string()),
                        ]
                    })
                    .collect();
                table(&["ROLE", "IN FORCE", "GRANTED", "EXPIRES"], &t);
                println!("effective: {}", acc.effective_roles(&u).await?.join(", "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
