//! The audit trail: typed activity events and the writer that batches them into
//! `user_activity_log` off the request path.
//!
//! ```text
//!  request tasks ──record()──▶ bounded queue ──▶ writer task ──batch (one tx)──▶ store
//!                  (wait or drop+count        (flush on batch_size or
//!                   when full, per config)      flush_interval; drains on shutdown)
//! ```

mod event;
mod request;
mod writer;

pub use event::{ActivityEvent, ActivityKind};
pub use request::{RequestActivity, RequestFacts};
pub use writer::{AuditLog, AuditStats, AuditWriter};
