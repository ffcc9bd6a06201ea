//! `gatehouse demo`: the whole product on one machine in one command. A built-in upstream app
//! shows what it receives; example routes cover public, signed-in, role and tier access; a
//! demo admin and a demo user are created on first run.

pub mod upstream;

use std::net::SocketAddr;
use std::path::Path;

use crate::accounts::{Accounts, NewAccount};
use crate::config::{self, Secret, Settings};
use crate::store::Tier;

/// The demo's configuration: routes for each kind of access, the given listen address, data
/// folder and upstream.
pub fn settings(
    listen: SocketAddr,
    data_dir: &Path,
    upstream: SocketAddr,
    database: Option<&str>,
) -> Result<Settings, config::ConfigError> {
    let db = database.map_or_else(
        || format!("sqlite://{}", data_dir.join("gatehouse.db").display()),
        str::to_string,
    );
    let toml = format!(
        r#"
[server]
listen = "{listen}"
data_dir = "{data}"
[upstream]
url = "http://{upstream}"
[database]
url = "{db}"
[portal]
product_name = "Gatehouse demo"

[[routes]]
path = "/"
access = "public"
[[routes]]
path = "/favicon.ico"
access = "public"
[[routes]]
path = "/app/**"
[[routes]]
path = "/admin/**"
roles = ["admin"]
[[routes]]
path = "/premium/**"
tiers = ["premium", "enterprise"]
"#,
        data = data_dir
            .display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\""),
    );
    config::from_toml(&toml)
}

/// `base` (a configuration file's settings) with the demo app as its upstream, the demo's
/// routes when it has none of its own, and `listen` when one was given.
pub fn over_config(mut base: Settings, demo: Settings, listen: Option<SocketAddr>) -> Settings {
    base.upstream.url = demo.upstream.url;
    if base.routes.is_empty() {
        base.routes = demo.routes;
    }
    if let Some(listen) = listen {
        base.server.listen = listen;
    }
    base
}

/// A password that passes the policy and is easy to copy: 20 characters, 120 random bits.
pub fn random_password() -> String {
    crate::auth::bearer::random_token()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(20)
        .collect()
}

/// Creates the demo accounts if missing; returns (username, password) for each one created now.
pub async fn ensure_users(
    accounts: &Accounts,
) -> Result<Vec<(String, String, &'static str)>, crate::accounts::AccountError> {
    let mut created = Vec::new();
    for (username, email, admin, tier, what) in [
        (
            "admin",
            "admin@demo.example",
            true,
            Tier::Premium,
            "admin, premium tier",
        ),
        (
            "demo",
            "demo@demo.example",
            false,
            Tier::Free,
            "user, free tier",
        ),
    ] {
        if accounts.get_by_username(username).await?.is_some() {
            continue;
        }
        let password = random_password();
        let mut a = NewAccount::new(username, email, Some(Secret::new(password.clone())));
        a.is_admin = admin;
        a.tier = tier;
        a.is_verified = true;
        a.first_name = Some(if admin { "Ada".into() } else { "Dee".into() });
        a.last_name = Some("Demo".into());
        accounts.create_user(a, None).await?;
        created.push((username.to_string(), password, what));
    }
    Ok(created)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn demo() -> Settings {
        settings(
            "127.0.0.1:8080".parse().unwrap(),
            Path::new("demo-data"),
            "127.0.0.1:9000".parse().unwrap(),
            None,
        )
        .unwrap()
    }

    fn patterns(s: &Settings) -> Vec<&str> {
        s.routes.iter().map(|r| r.pattern.as_str()).collect()
    }

    #[test]
    fn a_config_file_keeps_its_settings_with_the_demo_app_behind() {
        let file = config::from_toml(
            "[server]\nlisten = \"127.0.0.1:7000\"\ndata_dir = \"mine\"\n\
             [upstream]\nurl = \"http://app.internal:80\"\n[portal]\nproduct_name = \"Acme\"\n",
        )
        .unwrap();
        let s = over_config(file, demo(), None);
        assert_eq!(s.upstream.url.as_str(), "http://127.0.0.1:9000/");
        assert_eq!(s.portal.product_name, "Acme");
        assert_eq!(s.server.data_dir, Path::new("mine"));
        assert_eq!(s.server.listen.port(), 7000);
        assert_eq!(
            patterns(&s),
            patterns(&demo()),
            "no routes of its own: the demo's"
        );

        let file = config::from_toml("[[routes]]\npath = \"/only/**\"\n").unwrap();
        let s = over_config(file, demo(), Some("127.0.0.1:7001".parse().unwrap()));
        assert_eq!(patterns(&s), vec!["/only/**"]);
        assert_eq!(s.server.listen.port(), 7001);
    }
}
