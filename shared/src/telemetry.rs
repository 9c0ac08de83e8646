//! Tracing, set up once per process: JSON lines in Lambda (CloudWatch parses them), readable
//! lines locally. Never log secrets or message bodies at info level.

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

impl LogFormat {
    /// `LOG_FORMAT` (`json` or `pretty`); by default JSON inside Lambda, readable elsewhere.
    pub fn from_env(env: &crate::config::Env) -> Self {
        match env.optional("LOG_FORMAT").as_deref() {
            Some("json") => Self::Json,
            Some("pretty") => Self::Pretty,
            _ if env.optional("AWS_LAMBDA_FUNCTION_NAME").is_some() => Self::Json,
            _ => Self::Pretty,
        }
    }
}

/// Installs the global subscriber; `RUST_LOG` filters (default `info`). Calling it twice is
/// harmless, so tests and the local runner can both call it.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _already_set = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .without_time() // Lambda stamps every line already
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
