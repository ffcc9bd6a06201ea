//! `gatehouse user ...`

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};

use super::Ctx;
use super::output::{print_json, read_password, table};
use crate::accounts::{NewAccount, UserView};
use crate::store::{Tier, Ts, UserFilter};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TierArg {
    Free,
    Beta,
    Premium,
    Enterprise,
}

impl From<TierArg> for Tier {
    fn from(t: TierArg) -> Tier {
        match t {
            TierArg::Free => Tier::Free,
            TierArg::Beta => Tier::Beta,
            TierArg::Premium => Tier::Premium,
            TierArg::Enterprise => Tier::Enterprise,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password comes from stdin or a prompt, never from argv
    Create(CreateArgs),
    /// List users
    List(ListArgs),
    /// Show one user (by id, username or email); never prints secrets
    Show {
        user: String,
        #[arg(long)]
        json: bool,
    },
    /// Set a user's password (ends their sessions)
    SetPassword {
        user: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Lock an account so it cannot sign in (ends its sessions)
    Lock {
        user: String,
        /// How long, e.g. 30m, 2h, 7d
        #[arg(long = "for", value_name = "DURATION", default_value = "30m", value_parser = parse_duration)]
        duration: std::time::Duration,
    },
    /// Unlock an account and reset its failed sign-in count
    Unlock { user: String },
    /// Soft-delete an account (restorable; ends its sessions)
    Delete { user: String },
    /// Restore a soft-deleted account
    Restore { user: String },
    /// Deactivate an account: it cannot sign in, and its sessions end
    Deactivate { user: String },
    /// Activate a deactivated account
    Activate { user: String },
    /// Turn two-factor sign-in off for a user who lost their device (ends their sessions)
    #[command(name = "reset-2fa")]
    ResetTwofa { user: String },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long)]
    username: String,
    #[arg(long)]
    email: String,
    #[arg(long)]
    first_name: Option<String>,
    #[arg(long)]
    last_name: Option<String>,
    #[arg(long = "company")]
    company: Option<String>,
    #[arg(long)]
    phone: Option<String>,
    #[arg(long, value_enum, default_value = "free")]
    tier: TierArg,
    #[arg(long)]
    admin: bool,
    #[arg(long)]
    superuser: bool,
    /// Mark the email address as verified
    #[arg(long)]
    verified: bool,
    /// Read the password from stdin
    #[arg(long)]
    password_stdin: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only active accounts
    #[arg(long)]
    active: bool,
    #[arg(long, value_enum)]
    tier: Option<TierArg>,
    #[arg(long)]
    role: Option<String>,
    /// Match username, email, name or company (case-insensitive)
    #[arg(long)]
    search: Option<String>,
    /// Only verified accounts
    #[arg(long)]
    verified: bool,
    /// List soft-deleted accounts instead
    #[arg(long)]
    deleted: bool,
    #[arg(long, default_value_t = 100)]
    limit: i64,
    #[arg(long, default_value_t = 0)]
    offset: i64,
    #[arg(long)]
    json: bool,
}

pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 30m, 2h or 7d: {e}"))
}

pub async fn run(ctx: &Ctx, cmd: &UserCommand) -> anyhow::Result<ExitCode> {
    let acc = &ctx.accounts;
    match cmd {
        UserCommand::Create(a) => {
            let password = read_password(a.password_stdin)?;
            let mut new = NewAccount::new(&a.username, &a.email, Some(password));
            new.first_name = a.first_name.clone();
            new.last_name = a.last_name.clone();
            new.company_name = a.company.clone();
            new.phone = a.phone.clone();
            new.tier = a.tier.into();
            new.is_admin = a.admin;
            new.is_superuser = a.superuser;
            new.is_verified = a.verified;
            let user = acc.create_user(new, None).await?;
            if a.json {
                print_json(&acc.view(&user).await?)?;
            } else {
                println!("created user {} (id {})", user.username, user.id);
            }
        }
        UserCommand::List(a) => {
            let filter = UserFilter {
                active: a.active.then_some(true),
                tier: a.tier.map(Tier::from),
                role: a.role.clone(),
                verified: a.verified.then_some(true),
                deleted: Some(a.deleted),
                search: a.search.clone(),
                limit: a.limit,
                offset: a.offset,
                ..UserFilter::default()
            };
            let (rows, total) = acc.list(&filter).await?;
            let mut views = Vec::with_capacity(rows.len());
            for u in &rows {
                views.push(acc.view(u).await?);
            }
            if a.json {
                print_json(&serde_json::json!({
                    "users": views,
                    "total": total,
                    "limit": a.limit,
                    "offset": a.offset,
                }))?;
            } else {
                let rows: Vec<Vec<String>> = views.iter().map(summary_row).collect();
                table(
                    &["ID", "USERNAME", "EMAIL", "TIER", "STATUS", "ROLES"],
                    &rows,
                );
                println!("{} of {total} shown", views.len());
            }
        }
        UserCommand::Show { user, json } => {
            let u = acc.find(user).await?;
            let v = acc.view(&u).await?;
            if *json {
                print_json(&v)?;
            } else {
                print_user(&v);
            }
        }
        UserCommand::SetPassword {
            user,
            password_stdin,
        } => {
            let u = acc.find(user).await?;
            let pw = read_password(*password_stdin)?;
            let ended = acc.change_password(u.id, &pw, None).await?;
            println!(
                "password set for {}; {} session(s) ended",
                u.username,
                ended.len()
            );
        }
        UserCommand::Lock { user, duration } => {
            let u = acc.find(user).await?;
            let d = chrono::Duration::from_std(*duration).context("lock duration is too long")?;
            let until = Ts(acc.now().0 + d);
            acc.lock(u.id, until, None).await?;
            println!("{} is locked until {until}", u.username);
        }
        UserCommand::Unlock { user } => {
            let u = acc.find(user).await?;
            acc.unlock(u.id, None).await?;
            println!("{} is unlocked", u.username);
        }
        UserCommand::Delete { user } => {
            let u = acc.find(user).await?;
            let ended = acc.soft_delete(u.id, None).await?;
            println!(
                "{} is deleted (restorable); {} session(s) ended",
                u.username,
                ended.len()
            );
        }
        UserCommand::Restore { user } => {
            let u = acc.find(user).await?;
            acc.restore(u.id, None).await?;
            println!("{} is restored", u.username);
        }
        UserCommand::Deactivate { user } | UserCommand::Activate { user } => {
            let active = matches!(cmd, UserCommand::Activate { .. });
            let u = acc.find(user).await?;
            let patch = crate::store::UserPatch {
                is_active: Some(active),
                ..crate::store::UserPatch::default()
            };
            acc.update(u.id, patch, None).await?;
            let state = if active { "active" } else { "inactive" };
            println!("{} is {state}", u.username);
        }
        UserCommand::ResetTwofa { user } => {
            let u = acc.find(user).await?;
            acc.reset_twofa(u.id, None).await?;
            println!(
                "two-factor sign-in is off for {}; their sessions ended",
                u.username
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn status(v: &UserView) -> String {
    let mut s = Vec::new();
    if v.is_deleted {
        s.push("deleted");
    } else if !v.is_active {
        s.push("inactive");
    } else {
        s.push("active");
    }
    if v.is_locked {
        s.push("locked");
    }
    if v.is_verified {
        s.push("verified");
    }
    if v.twofa_enabled {
        s.push("2fa");
    }
    s.join(",")
}

fn summary_row(v: &UserView) -> Vec<String> {
    vec![
        v.id.to_string(),
        v.username.clone(),
        v.email.clone(),
        v.subscription_tier.clone(),
        status(v),
        v.roles.join(","),
    ]
}

fn print_user(v: &UserView) {
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let ts = |o: &Option<Ts>| o.map_or_else(|| "-".into(), |t| t.to_string());
    println!("id:            {}", v.id);
    println!("username:      {}", v.username);
    println!("email:         {}", v.email);
    println!("name:          {}", opt(&v.full_name));
    println!("company:       {}", opt(&v.company_name));
    println!("phone:         {}", opt(&v.phone));
    println!("status:        {}", status(v));
    println!(
        "tier:          {} ({})",
        v.subscription_tier, v.subscription_status
    );
    println!("credits:       {}", v.credits_balance);
    println!(
        "roles:         {}",
        if v.roles.is_empty() {
            "-".into()
        } else {
            v.roles.join(", ")
        }
    );
    println!("created:       {}", v.created_at);
    println!("last login:    {}", ts(&v.last_login));
    if let Some(t) = v.account_locked_until {
        println!("locked until:  {t}");
    }
}
