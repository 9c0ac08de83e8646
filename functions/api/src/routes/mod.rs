//! One module per resource.

pub mod conversations;
pub mod health;
pub mod jobs;
pub mod numbers;
