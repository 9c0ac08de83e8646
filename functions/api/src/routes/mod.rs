//! One module per resource.

pub mod automations;
pub mod broadcasts;
pub mod contacts;
pub mod conversations;
pub mod health;
pub mod jobs;
pub mod numbers;
pub mod templates;
