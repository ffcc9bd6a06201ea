//! `gatehouse token ...`: API tokens for the admin API.

use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;

use super::Ctx;
use super::output::{print_json, table};
use crate::session::ApiTokens;
use crate::store::{TokenId, TokenRow, Ts};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token acting as a user (with that user's roles); prints it once, on the last line
    Create {
        /// The user (id, username or email)
        #[arg(long)]
        user: String,
        /// A label to recognise the token by
        #[arg(long, default_value = "api")]
        name: String,
        /// Expiry: an RFC 3339 time or a duration from now (e.g. 90d) [default: never]
        #[arg(long, value_name = "TIME|DURATION")]
        expires: Option<String>,
    },
    /// List tokens (never the tokens themselves)
    List {
        /// Only this user's tokens
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id
    Revoke { id: i64 },
}

fn status(t: &TokenRow, now: Ts) -> &'static str {
    if t.revoked_at.is_some() {
        "revoked"
    } else if !t.is_live(now) {
        "expired"
    } else {
        "active"
    }
}

pub async fn run(ctx: &Ctx, cmd: &TokenCommand) -> anyhow::Result<ExitCode> {
    let acc = &ctx.accounts;
    let tokens = ApiTokens::new(ctx.store.clone(), acc.clock().clone(), acc.audit().clone());
    let now = acc.now();
    match cmd {
        TokenCommand::Create {
            user,
            name,
            expires,
        } => {
            let u = acc.find(user).await?;
            let expires_at = expires
                .as_deref()
                .map(|e| super::role::parse_expiry(e, now))
                .transpose()?;
            let (token, row) = tokens.create(&u, name, expires_at, None).await?;
            if !acc.effective_roles(&u).await?.iter().any(|r| r == "admin") {
                eprintln!(
                    "note: {} is not an admin; this token reaches only their own account",
                    u.username
                );
            }
            let until = row
                .expires_at
                .map_or_else(|| "never expires".to_string(), |t| format!("expires {t}"));
            println!(
                "created API token {} ({}) for {}; {until}",
                row.id, row.name, u.username
            );
            println!("It is shown only this once; send it as: Authorization: Bearer <token>");
            println!("{token}");
        }
        TokenCommand::List { user, json } => {
            let user_id = match user {
                Some(u) => Some(acc.find(u).await?.id),
                None => None,
            };
            let rows = tokens.list(user_id).await?;
            if *json {
                let v: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "id": t.id,
                            "user_id": t.user_id,
                            "username": t.username,
                            "name": t.name,
                            "created_at": t.created_at,
                            "expires_at": t.expires_at,
                            "last_used_at": t.last_used_at,
                            "revoked_at": t.revoked_at,
                            "status": status(t, now),
                        })
                    })
                    .collect();
                print_json(&serde_json::json!({ "tokens": v }))?;
            } else {
                let ts = |t: Option<Ts>| t.map_or_else(|| "-".to_string(), |t| t.to_string());
                let t: Vec<Vec<String>> = rows
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.to_string(),
                            t.username.clone(),
                            t.name.clone(),
                            status(t, now).to_string(),
                            t.created_at.to_string(),
                            ts(t.expires_at),
                            ts(t.last_used_at),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "ID",
                        "USER",
                        "NAME",
                        "STATUS",
                        "CREATED",
                        "EXPIRES",
                        "LAST USED",
                    ],
                    &t,
                );
            }
        }
        TokenCommand::Revoke { id } => {
            if !tokens.revoke(TokenId(*id), None).await? {
                bail!("no active token with id {id}; see `gatehouse token list`");
            }
            println!("token {id} is revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}
