//! `SIGHUP`: read the config file again and put it in force between requests.
//!
//! ```text
//!  SIGHUP ─▶ load + validate the file ──invalid──▶ log every problem (key, line); keep running
//!         ─▶ keep the running value of every key that needs a restart (warn, naming them)
//!         ─▶ build what the settings shape (routes, headers, templates, upstream client)
//!         ─▶ swap: each request from now on loads the new configuration; requests in flight
//!            finish with the one they started with
//! ```
//!
//! What holds state (database pool, caches, throttles and pending sign-ins, the activity
//! writer, keys, the log subscriber, listeners and workers) is built once at start, so the keys
//! that shape it need a restart.

use crate::config::{ConfigError, Settings};

use super::Running;

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot apply the configuration: {0}")]
    Apply(#[from] crate::app::StartError),
}

/// Copies each restart-only value from the running settings into `new`, and names those that
/// the file changed.
fn keep_restart_only(old: &Settings, new: &mut Settings) -> Vec<&'static str> {
    let mut changed = Vec::new();
    // Settings hold no `PartialEq` (matchers, secrets); their `Debug` form tells a change,
    // with secrets redacted, which is enough to name a key.
    macro_rules! keep {
        ($($key:literal => $($field:ident).+;)+) => {$(
            if format!("{:?}", new.$($field).+) != format!("{:?}", old.$($field).+) {
                changed.push($key);
            }
            new.$($field).+ = old.$($field).+.clone();
        )+};
    }
    keep! {
        "server.listen" => server.listen;
        "server.workers" => server.workers;
        "server.tls_cert/tls_key" => server.tls;
        "server.data_dir" => server.data_dir;
        "server.public_url" => server.public_url;
        "server.behind_tls_proxy" => server.behind_tls_proxy;
        "server.max_connections" => server.max_connections;
        "server.max_header_bytes" => server.max_header_bytes;
        "server.header_read_timeout" => server.header_read_timeout;
        "server.shutdown_grace" => server.shutdown_grace;
        "server.metrics_listen" => server.metrics_listen;
        "[database]" => database;
        "[session]" => session;
        // [security] but the throttles and the pending sign-in step (built again per
        // configuration, their counts live in the database): the accounts service, the
        // hasher and the keys hold the rest.
        "security.lockout_threshold" => security.lockout_threshold;
        "security.lockout_duration" => security.lockout_duration;
        "security.argon2" => security.argon2;
        "security.hash_concurrency" => security.hash_concurrency;
        "security.min_password_length" => security.min_password_length;
        "security.secret_key" => security.secret_key;
        "security.secret_key_file" => security.secret_key_file;
        "security.require_2fa_for_admins" => security.require_2fa_for_admins;
        "security.reset_token_ttl" => security.reset_token_ttl;
        "security.verification_token_ttl" => security.verification_token_ttl;
        "security.twofa_attempts_per_account" => security.twofa_attempts_per_account;
        "security.username_rules" => security.username_rules;
        "security.assertion_key_files" => security.assertion_key_files;
        "security.assertion_audience" => security.assertion_audience;
        "security.assertion_ttl" => security.assertion_ttl;
        "[audit]" => audit;
        "[mail]" => mail;
        "[log]" => log;
    }
    changed
}

impl Running {
    /// Puts `new` in force for every request from now on; returns the keys it changed that
    /// keep their running value until a restart.
    pub fn reload(&self, mut new: Settings) -> Result<Vec<&'static str>, ReloadError> {
        let current = self.live.current();
        let restart = keep_restart_only(&current.settings, &mut new);
        let app = current.reconfigured(new)?;
        self.live.replace(&app);
        Ok(restart)
    }

    /// One `SIGHUP`: loads with `load`, applies, and logs the outcome. Invalid files are
    /// refused with every problem logged; the running configuration stays.
    pub fn reload_with(&self, load: &dyn Fn() -> Result<Settings, ConfigError>) {
        let metrics = &self.app.metrics;
        let outcome = load().map_err(ReloadError::from).and_then(|settings| {
            for w in &settings.warnings {
                tracing::warn!("config: {w}");
            }
            self.reload(settings)
        });
        match outcome {
            Ok(restart) => {
                metrics.config_reloads.inc();
                if !restart.is_empty() {
                    tracing::warn!(
                        keys = %restart.join(", "),
                        "configuration reloaded, but these keys changed and need a restart; \
                         they keep their running values"
                    );
                }
                tracing::info!("configuration reloaded");
            }
            Err(e) => {
                metrics.config_reload_failures.inc();
                match &e {
                    ReloadError::Config(ConfigError::Invalid { origin, problems }) => {
                        for p in problems {
                            tracing::error!(
                                file = %origin,
                                key = %p.key,
                                line = p.line,
                                "config reload refused: {p}"
                            );
                        }
                    }
                    other => tracing::error!("config reload refused: {other}"),
                }
                tracing::warn!("the running configuration stays in force");
            }
        }
    }

    /// Runs until SIGINT or SIGTERM, reloading with `load` on each SIGHUP, then shuts down
    /// gracefully.
    pub async fn run_until_signal_reloading(
        self,
        load: impl Fn() -> Result<Settings, ConfigError>,
    ) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::hangup()) {
                Ok(mut hup) => {
                    let stop = super::shutdown_signal();
                    tokio::pin!(stop);
                    loop {
                        tokio::select! {
                            () = &mut stop => break,
                            Some(()) = hup.recv() => {
                                tracing::info!("SIGHUP: reloading the configuration");
                                self.reload_with(&load);
                            }
                        }
                    }
                    tracing::info!("shutting down");
                    self.shutdown().await;
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP; no reloads"),
            }
        }
        let _ = &load;
        self.run_until_signal().await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn restart_only_keys_are_named_and_kept() {
        let old = crate::config::from_toml(
            "[server]\nlisten = \"127.0.0.1:8080\"\n[[routes]]\npath = \"/a\"\naccess = \"public\"\n",
        )
        .unwrap();
        let mut new = crate::config::from_toml(
            "[server]\nlisten = \"127.0.0.1:9090\"\n[[routes]]\npath = \"/b\"\naccess = \"public\"\n[session]\nidle_timeout = \"5m\"\n",
        )
        .unwrap();
        let changed = keep_restart_only(&old, &mut new);
        // public_url defaults from listen, so it changed with it.
        assert_eq!(
            changed,
            vec!["server.listen", "server.public_url", "[session]"]
        );
        assert_eq!(new.server.listen, old.server.listen);
        assert_eq!(new.session.idle_timeout, old.session.idle_timeout);
        assert_eq!(new.routes[0].pattern, "/b");
    }

    /// The throttles' limits take effect on reload; the rest of [security] waits for a restart.
    #[test]
    fn throttle_limits_reload_other_security_keys_wait() {
        let old = crate::config::from_toml("[security]\nlogin_attempts_per_ip = 20\n").unwrap();
        let mut new = crate::config::from_toml(
            "[security]\nlogin_attempts_per_ip = 3\nreset_requests_per_ip = 1\nlockout_threshold = 9\n",
        )
        .unwrap();
        let changed = keep_restart_only(&old, &mut new);
        assert_eq!(changed, vec!["security.lockout_threshold"]);
        assert_eq!(new.security.login_attempts_per_ip, 3);
        assert_eq!(new.security.reset_requests_per_ip, 1);
        assert_eq!(
            new.security.lockout_threshold,
            old.security.lockout_threshold
        );
    }
}
