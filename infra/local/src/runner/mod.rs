//! The glue AWS puts around Lambda functions, played locally around the same handler code:
//! the webhook's function URL and API Gateway ([`http`]), SQS event source mappings ([`sqs`])
//! and EventBridge Scheduler ([`scheduler`]).

pub mod http;
pub mod scheduler;
pub mod sqs;

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use futures_util::future::BoxFuture;

/// An SQS-triggered function as the event source mapping sees it: the batch and the
/// invocation's deadline (which Lambda puts in the context).
pub type SqsHandler =
    Arc<dyn Fn(SqsEvent, std::time::Instant) -> BoxFuture<'static, Result<SqsBatchResponse, String>> + Send + Sync>;

/// A function invoked directly with a JSON payload (Scheduler targets, rate schedules).
pub type InvokeHandler =
    Arc<dyn Fn(serde_json::Value) -> BoxFuture<'static, Result<serde_json::Value, String>> + Send + Sync>;
