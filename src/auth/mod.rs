//! Credentials: password hashing and policy, legacy Werkzeug hashes, random bearer values
//! ([`bearer`]: session cookies, links, API tokens), TOTP and recovery codes, throttles.
//!
//! Nothing here knows about HTTP or the database.

pub mod bearer;
pub mod common_passwords;
mod hashpool;
pub mod keys;
pub mod legacy;
pub mod passkey;
pub mod password;
pub mod throttle;
pub mod totp;

pub use password::{PasswordError, PasswordHasher, PolicyError, Verified};
