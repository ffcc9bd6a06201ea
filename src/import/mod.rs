//! Importing users from an existing app's `leads` table (`gatehouse import-leads`).
