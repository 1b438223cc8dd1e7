//! Logs of the command-line programs: structured `tracing` events on stderr.

/// Logs to stderr at `info` (`RUST_LOG` overrides), keeping the broker's chatter down.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rumqttd=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}
