//! Outgoing mail: password-reset links, address verification, security notices. Each mail is
//! `multipart/alternative`: the text, then the same words as simple HTML.
//!
//! ```text
//!  portal handler ──send_later()──▶ spawned task ──(bounded by mail.send_timeout)──▶
//!      SMTP via lettre (STARTTLS | implicit TLS | none, optional auth)   when mail.smtp_host is set
//!      an .eml file in mail.outbox_dir, plus a log line                  otherwise
//! ```
//!
//! Sending never happens on the request path, so a slow or failing mail server neither delays
//! a response nor changes it: a reset request looks the same whether or not a mail went out.
//! Log lines name the kind of mail, the recipient and the outcome, never the body (it holds
//! the link and its token).

mod html;
mod messages;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, Message, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

pub use messages::{password_changed, reset_link, set_password_link, signup_attempt, verify_link};

use crate::config::{MailSettings, SmtpTls};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("mail.from {0:?} is not an address like \"Name <name@example.com>\"")]
    From(String),
    #[error("recipient {0:?} is not a usable address")]
    To(String),
    #[error("cannot build the message: {0}")]
    Build(String),
    #[error("SMTP: {0}")]
    Smtp(String),
    #[error("cannot write to the outbox {path}: {source}")]
    Outbox {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("sending took longer than {0:?}")]
    Timeout(Duration),
}

/// One message to send. `Debug` leaves out the body, which may hold a token.
#[derive(Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    /// What kind of mail this is, for log lines (`password_reset`, `verify_email`, ...).
    pub kind: &'static str,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("kind", &self.kind)
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

enum Transport {
    Outbox(PathBuf),
    Smtp(Box<AsyncSmtpTransport<Tokio1Executor>>),
}

/// Sends mail through SMTP or into the outbox folder. Cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

struct Inner {
    from: Mailbox,
    timeout: Duration,
    transport: Transport,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = match &self.inner.transport {
            Transport::Outbox(p) => format!("outbox {}", p.display()),
            Transport::Smtp(_) => "smtp".to_string(),
        };
        f.debug_struct("Mailer").field("transport", &t).finish()
    }
}

impl Mailer {
    pub fn new(settings: &MailSettings) -> Result<Mailer, MailError> {
        let from: Mailbox = settings
            .from
            .parse()
            .map_err(|_| MailError::From(settings.from.clone()))?;
        let transport = match &settings.smtp {
            None => Transport::Outbox(settings.outbox_dir.clone()),
            Some(s) => {
                let err = |e: lettre::transport::smtp::Error| MailError::Smtp(e.to_string());
                let mut b = match s.tls {
                    SmtpTls::StartTls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)
                            .map_err(err)?
                    }
                    SmtpTls::Implicit => {
                        AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host).map_err(err)?
                    }
                    SmtpTls::None => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
                    }
                };
                b = b.port(s.port).timeout(Some(settings.send_timeout));
                if let Some(user) = &s.username {
                    let pw = s
                        .password
                        .as_ref()
                        .map(|p| p.expose().clone())
                        .unwrap_or_default();
                    b = b.credentials(Credentials::new(user.clone(), pw));
                }
                Transport::Smtp(Box::new(b.build()))
            }
        };
        Ok(Mailer {
            inner: Arc::new(Inner {
                from,
                timeout: settings.send_timeout,
                transport,
            }),
        })
    }

    fn message(&self, mail: &Mail) -> Result<Message, MailError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|_| MailError::To(mail.to.clone()))?;
        // Plain 7-bit text when it fits, so links stay readable in the raw message.
        let text = Body::new_with_encoding(mail.text.clone(), ContentTransferEncoding::SevenBit)
            .or_else(|_| {
                Body::new_with_encoding(mail.text.clone(), ContentTransferEncoding::EightBit)
            })
            .unwrap_or_else(|_| Body::new(mail.text.clone()));
        let html = Body::new(html::from_text(&mail.subject, &mail.text));
        // The text part first: clients show the last part they can render, and plain-text
        // readers (and anything that reads the raw message) meet the text before the HTML.
        let body = MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(text),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(html),
            );
        Message::builder()
            .from(self.inner.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .multipart(body)
            .map_err(|e| MailError::Build(e.to_string()))
    }

    /// Sends one mail now, bounded by `mail.send_timeout`.
    pub async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let msg = self.message(mail)?;
        let timeout = self.inner.timeout;
        let work = async {
            match &self.inner.transport {
                Transport::Smtp(t) => t
                    .send(msg)
                    .await
                    .map(|_| ())
                    .map_err(|e| MailError::Smtp(e.to_string())),
                Transport::Outbox(dir) => {
                    let path = write_outbox(dir, &msg.formatted()).await?;
                    tracing::info!(
                        kind = mail.kind,
                        to = %mail.to,
                        path = %path.display(),
                        "no SMTP server configured (mail.smtp_host): mail written to the outbox"
                    );
                    Ok(())
                }
            }
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| MailError::Timeout(timeout))?
    }

    /// Sends in the background; the outcome only reaches the log.
    pub fn send_later(&self, mail: Mail) {
        let this = self.clone();
        tokio::spawn(async move {
            match this.send(&mail).await {
                Ok(()) => tracing::debug!(kind = mail.kind, to = %mail.to, "mail sent"),
                Err(e) => {
                    tracing::error!(kind = mail.kind, to = %mail.to, error = %e, "mail not sent")
                }
            }
        });
    }
}

/// Writes `<unix-micros>-<random>.eml` atomically (temp file, then rename).
async fn write_outbox(dir: &std::path::Path, bytes: &[u8]) -> Result<PathBuf, MailError> {
    let err = |source| MailError::Outbox {
        path: dir.display().to_string(),
        source,
    };
    tokio::fs::create_dir_all(dir).await.map_err(err)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let name = format!(
        "{stamp}-{}.eml",
        &crate::web::request_ctx::new_request_id()[..8]
    );
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    tokio::fs::write(&tmp, bytes).await.map_err(err)?;
    tokio::fs::rename(&tmp, &path).await.map_err(err)?;
    Ok(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn text_then_html_alternative() {
        let mailer = Mailer::new(&MailSettings {
            from: "Gatehouse <noreply@example.com>".into(),
            outbox_dir: PathBuf::from("unused"),
            smtp: None,
            send_timeout: Duration::from_secs(1),
        })
        .unwrap();
        let base = url::Url::parse("https://login.example.com/").unwrap();
        let mail = reset_link(&base, "Acme", "ann@example.com", "tok", "1 hour");
        let raw = String::from_utf8(mailer.message(&mail).unwrap().formatted()).unwrap();
        assert!(raw.contains("Content-Type: multipart/alternative"), "{raw}");
        let text = raw.find("Content-Type: text/plain").unwrap();
        let html = raw.find("Content-Type: text/html").unwrap();
        assert!(text < html, "{raw}");
        // The text part is the text as it was, line for line (once quoted-printable's soft
        // breaks are undone).
        let unfolded = raw[text..html].replace("=\r\n", "").replace("=3D", "=");
        assert!(unfolded.contains(&mail.text.replace('\n', "\r\n")), "{raw}");
    }
}
