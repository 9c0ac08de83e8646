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
/// harmless, so tests and the local runner can both call it. JSON lines carry the function's
/// name (`AWS_LAMBDA_FUNCTION_NAME`), the current span (the correlation id, the job, the
/// workspace) and every enclosing one (the runtime's `requestId`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _already_set = match format {
        LogFormat::Json => {
            let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into());
            let json =
                tracing_subscriber::fmt::format().json().with_current_span(true).with_span_list(true).without_time(); // Lambda stamps every line already
            builder
                .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                .event_format(WithFunction::new(&function, json))
                .try_init()
        }
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// A JSON event format with `"function": <name>` first on every line.
pub struct WithFunction<F> {
    field: String,
    inner: F,
}

impl<F> WithFunction<F> {
    pub fn new(function: &str, inner: F) -> Self {
        Self { field: format!("\"function\":{},", serde_json::Value::from(function)), inner }
    }
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for WithFunction<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut line = String::new();
        self.inner.format_event(ctx, tracing_subscriber::fmt::format::Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{{}{rest}", self.field),
            None => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_json_line_names_its_function() {
        let captured = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = captured.clone();
        let json = tracing_subscriber::fmt::format().json().with_current_span(true).without_time();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(WithFunction::new("wapisnap-SenderFunction-x1", json))
            .with_writer(move || CaptureWriter(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("send", job = "job-1");
            let _entered = span.enter();
            tracing::info!(attempt = 2, "sent");
        });
        let text = String::from_utf8(captured.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["function"], "wapisnap-SenderFunction-x1");
        assert_eq!(line["fields"]["attempt"], 2);
        assert_eq!(line["span"]["job"], "job-1");
    }

    struct CaptureWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for CaptureWriter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
