//! The texts of the mails the portal sends. Links are built on `server.public_url`, never on
//! the request's Host header.

use super::Mail;

fn link(base: &url::Url, path: &str, token: &str) -> String {
    let mut u = base.clone();
    u.set_path(path);
    u.set_query(None);
    u.query_pairs_mut().append_pair("token", token);
    u.to_string()
}

pub fn reset_link(base: &url::Url, product: &str, to: &str, token: &str, ttl: &str) -> Mail {
    let url = link(base, "/_auth/reset/confirm", token);
    Mail {
        to: to.to_string(),
        subject: format!("Reset your {product} password"),
        text: format!(
            "Someone asked to reset the password of your {product} account.\n\n\
             To choose a new password, open this link within {ttl}:\n\n{url}\n\n\
             The link works once. If you did not ask for this, ignore this mail: your password \
             stays as it is.\n"
        ),
        kind: "password_reset",
    }
}

/// The welcome mail for an account an administrator created without a password.
pub fn set_password_link(base: &url::Url, product: &str, to: &str, token: &str, ttl: &str) -> Mail {
    let url = link(base, "/_auth/reset/confirm", token);
    Mail {
        to: to.to_string(),
        subject: format!("Choose a password for your {product} account"),
        text: format!(
            "An administrator created a {product} account for this address.\n\n\
             To choose your password, open this link within {ttl}:\n\n{url}\n\n\
             The link works once. After it expires, use \"Forgot your password?\" on the \
             sign-in page to get a new one.\n"
        ),
        kind: "set_password",
    }
}

pub fn verify_link(base: &url::Url, product: &str, to: &str, token: &str, ttl: &str) -> Mail {
    let url = link(base, "/_auth/verify", token);
    Mail {
        to: to.to_string(),
        subject: format!("Confirm your email address for {product}"),
        text: format!(
            "Please confirm that this address belongs to your {product} account.\n\n\
             Open this link within {ttl}:\n\n{url}\n\n\
             If you did not sign up or change your address, ignore this mail.\n"
        ),
        kind: "verify_email",
    }
}

/// To the owner of an address someone tried to sign up with: the sign-up page answers as if
/// it worked (so it never tells whether an address has an account), and the owner learns of it.
pub fn signup_attempt(base: &url::Url, product: &str, to: &str) -> Mail {
    let mut sign_in = base.clone();
    sign_in.set_path("/_auth/login");
    sign_in.set_query(None);
    let mut reset = base.clone();
    reset.set_path("/_auth/reset");
    reset.set_query(None);
    Mail {
        to: to.to_string(),
        subject: format!("Someone tried to sign up for {product} with your address"),
        text: format!(
            "Someone tried to create a new {product} account with this address, which already \
             has an account. No new account was made.\n\n\
             If it was you, sign in instead: {sign_in}\n\
             Forgot your password? Choose a new one: {reset}\n\n\
             If it was not you, you can ignore this mail: your account is unchanged.\n"
        ),
        kind: "signup_attempt",
    }
}

pub fn password_changed(product: &str, to: &str, how: &str) -> Mail {
    Mail {
        to: to.to_string(),
        subject: format!("Your {product} password was changed"),
        text: format!(
            "The password of your {product} account was just changed ({how}), and every other \
             session was signed out.\n\n\
             If this was not you, reset your password at once and contact your administrator.\n"
        ),
        kind: "password_changed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_use_the_public_url() {
        let base = url::Url::parse("https://login.example.com/base?x=1").unwrap();
        let m = reset_link(&base, "Acme", "a@example.com", "tok-_1", "1 hour");
        assert!(
            m.text
                .contains("https://login.example.com/_auth/reset/confirm?token=tok-_1"),
            "{}",
            m.text
        );
        assert!(!format!("{m:?}").contains("tok-_1"));
    }
}
