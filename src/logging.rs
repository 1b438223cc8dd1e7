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

/// An error and its causes on one line, `what: why: root cause`, each cause said once
/// (many errors already print their source in their own message).
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_chain_says_each_cause_once() {
        let io = std::io::Error::other("disk full");
        let outer = anyhow::Error::new(io).context("cannot write the report");
        assert_eq!(
            super::chain(outer.as_ref()),
            "cannot write the report: disk full"
        );
        #[derive(Debug, thiserror::Error)]
        #[error("cannot listen on :80: {source}")]
        struct Listen {
            source: std::io::Error,
        }
        let listen = anyhow::Error::new(Listen {
            source: std::io::Error::other("denied"),
        });
        assert_eq!(
            super::chain(listen.as_ref()),
            "cannot listen on :80: denied"
        );
    }
}
