//! Credentials: password hashing and policy, legacy Werkzeug hashes, random tokens.
//!
//! Nothing here knows about HTTP or the database.

pub mod common_passwords;
pub mod keys;
pub mod legacy;
pub mod password;
pub mod tokens;

pub use password::{PasswordError, PasswordHasher, PolicyError, Verified};
