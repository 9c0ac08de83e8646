//! Glue between Lambda's event shapes and our code: one SQS batch adapter, one HTTP error
//! mapping, work bounded by the invocation's deadline. Handlers use these instead of repeating
//! the mechanics.

pub mod deadline;
pub mod http;
pub mod sqs;
