//! What Gatehouse hands to others: `[headers]` (the identity headers the app reads), `[audit]`
//! (the activity log writer), `[mail]` (outbox or SMTP) and `[portal]` (the pages' branding).

use std::path::Path;
use std::time::Duration;

use super::super::Secret;
use super::super::raw::{RawAudit, RawHeaders, RawMail, RawPortal};
use super::super::settings::*;
use super::Ctx;

pub(super) fn headers(c: &mut Ctx<'_>, h: &RawHeaders) -> HeaderNames {
    HeaderNames {
        user_id: c.header("headers.user_id", &h.user_id, "X-Auth-User-Id"),
        user: c.header("headers.user", &h.user, "X-Auth-User"),
        email: c.header("headers.email", &h.email, "X-Auth-Email"),
        name: c.header("headers.name", &h.name, "X-Auth-Name"),
        roles: c.header("headers.roles", &h.roles, "X-Auth-Roles"),
        tier: c.header("headers.tier", &h.tier, "X-Auth-Tier"),
        admin: c.header("headers.admin", &h.admin, "X-Auth-Admin"),
        verified: c.header("headers.verified", &h.verified, "X-Auth-Verified"),
        assertion: c.header("headers.assertion", &h.assertion, "X-Auth-Assertion"),
        request_id: c.header("headers.request_id", &h.request_id, "X-Request-Id"),
        allow_method_override: h.allow_method_override.unwrap_or(false),
    }
}

pub(super) fn audit(c: &mut Ctx<'_>, a: &RawAudit) -> AuditSettings {
    AuditSettings {
        queue_capacity: c.int(
            "audit.queue_capacity",
            &a.queue_capacity,
            65_536,
            1,
            10_000_000,
        ) as usize,
        batch_size: c.int("audit.batch_size", &a.batch_size, 512, 1, 100_000) as usize,
        flush_interval: c.duration(
            "audit.flush_interval",
            &a.flush_interval,
            Duration::from_millis(200),
        ),
        on_full: match &a.on_full {
            None => QueueFullPolicy::Wait,
            Some(s) => match s.get_ref().as_str() {
                "wait" => QueueFullPolicy::Wait,
                "drop" => QueueFullPolicy::Drop,
                other => {
                    let line = c.line(s);
                    c.problem(
                        "audit.on_full",
                        Some(line),
                        format!("{other:?} is not \"wait\" or \"drop\""),
                    );
                    QueueFullPolicy::Wait
                }
            },
        },
    }
}

pub(super) fn mail(c: &mut Ctx<'_>, m: &RawMail, data_dir: &Path) -> MailSettings {
    let smtp = match c.text(&m.smtp_host, None) {
        None => None,
        Some((host, _)) => {
            let tls = match m
                .smtp_tls
                .as_ref()
                .map(|s| (s.get_ref().as_str(), c.line(s)))
            {
                None | Some(("starttls", _)) => SmtpTls::StartTls,
                Some(("implicit", _)) | Some(("tls", _)) => SmtpTls::Implicit,
                Some(("none", _)) => SmtpTls::None,
                Some((other, line)) => {
                    c.problem(
                        "mail.smtp_tls",
                        Some(line),
                        format!("{other:?} is not \"starttls\", \"implicit\" or \"none\""),
                    );
                    SmtpTls::StartTls
                }
            };
            let default_port = match tls {
                SmtpTls::Implicit => 465,
                SmtpTls::StartTls => 587,
                SmtpTls::None => 25,
            };
            let password = match (
                c.text(&m.smtp_password, None),
                c.path(&m.smtp_password_file, None),
            ) {
                (Some((p, _)), _) => Some(Secret::new(p)),
                (None, Some(path)) => match std::fs::read_to_string(&path) {
                    Ok(p) => Some(Secret::new(p.trim_end().to_string())),
                    Err(e) => {
                        c.problem(
                            "mail.smtp_password_file",
                            None,
                            format!("cannot read {}: {e}", path.display()),
                        );
                        None
                    }
                },
                (None, None) => None,
            };
            Some(SmtpSettings {
                host,
                port: c.int("mail.smtp_port", &m.smtp_port, default_port, 1, 65_535) as u16,
                tls,
                username: c.text(&m.smtp_username, None).map(|(u, _)| u),
                password,
            })
        }
    };
    MailSettings {
        from: c
            .text(&m.from, None)
            .map_or_else(|| "Gatehouse <gatehouse@localhost>".to_string(), |(v, _)| v),
        outbox_dir: c
            .path(&m.outbox_dir, None)
            .unwrap_or_else(|| data_dir.join("outbox")),
        smtp,
        // --- portal flows ---
        send_timeout: c.duration(
            "mail.send_timeout",
            &m.send_timeout,
            Duration::from_secs(15),
        ),
    }
}

pub(super) fn portal(c: &mut Ctx<'_>, p: &RawPortal) -> PortalSettings {
    PortalSettings {
        product_name: c
            .text(&p.product_name, None)
            .map_or_else(|| "Gatehouse".to_string(), |(v, _)| v),
        logo_url: c.text(&p.logo_url, None).map(|(v, _)| v),
        accent_color: match c.text(&p.accent_color, None) {
            None => "#2457c5".to_string(),
            Some((v, line)) => {
                let ok = v.len() == 7
                    && v.starts_with('#')
                    && v[1..].bytes().all(|b| b.is_ascii_hexdigit());
                if !ok {
                    c.problem(
                        "portal.accent_color",
                        line,
                        format!("{v:?} is not a colour like \"#2457c5\""),
                    );
                }
                v
            }
        },
        registration: match c.text(&p.registration, None) {
            None => Registration::Closed,
            Some((v, line)) => match v.as_str() {
                "closed" => Registration::Closed,
                "open" => Registration::Open,
                _ => {
                    c.problem(
                        "portal.registration",
                        line,
                        format!("{v:?} is not \"closed\" or \"open\""),
                    );
                    Registration::Closed
                }
            },
        },
    }
}
