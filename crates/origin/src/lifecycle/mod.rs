//! Lifecycle rules (`rules`: S3's validation, when a version expires) and the background
//! worker that applies them (`worker`, `decide`).

mod decide;
mod rules;
mod worker;

pub use self::rules::{Rule, RuleError, RuleErrorKind};
pub(crate) use self::worker::spawn;
