//! Glue between Lambda's event shapes and our code: one SQS batch adapter, one HTTP error
//! mapping. Handlers use these instead of repeating the mechanics.

pub mod http;
pub mod sqs;
