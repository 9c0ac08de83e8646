//! Accepting a send request from a producer (the API, a flow step, a broadcast): the job is
//! stored QUEUED first, then its attempt goes on the send queue. A request is durable the
//! moment it is accepted: if the queue message is lost, or ends in the dead-letter queue, the
//! job still says QUEUED and the sweeper (or an operator) sees it.

use chrono::{DateTime, Utc};

use crate::domain::{JobState, SendJob, SendRequest};
use crate::queues::{QueueError, Queues};
use crate::store::jobs::Accepted;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The job id was used before for other content (the API answers 409).
    #[error("send job {0} already exists with other content; use a new job id for a new message")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Stores the job and queues its first attempt. Accepting the same request again is harmless:
/// a job still QUEUED is queued again (the first enqueue may be what failed), and only one
/// delivery can claim it.
pub async fn accept_send(
    store: &Store,
    queues: &Queues,
    job: &SendJob,
    now: DateTime<Utc>,
) -> Result<JobState, AcceptError> {
    let state = match store.accept_job(job, now).await? {
        Accepted::New => JobState::Queued,
        Accepted::Again(state) => state,
        Accepted::Conflict => return Err(AcceptError::Conflict(job.job_id.to_string())),
    };
    if state == JobState::Queued {
        let request =
            SendRequest::Attempt { workspace_id: job.workspace_id.clone(), job_id: job.job_id.clone(), attempt: 0 };
        queues.enqueue_send(&request, chrono::Duration::zero()).await?;
    }
    Ok(state)
}
