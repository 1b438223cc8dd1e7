//! `[mqtt]`: where the broker is and how the controller proves who it is. The bus itself
//! (credentials, grants, the broker's files) is [`crate::bus`].

use std::path::{Path, PathBuf};

/// Not a broker URL.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a broker URL like mqtt://host:1883 or mqtts://user@host:8883")]
pub struct BadBrokerUrl(pub String);

/// A broker URL: `mqtt://host:port`, `mqtts://user@host:port` (TLS), `tcp://` as `mqtt://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub user: Option<String>,
    pub host: String,
    pub port: u16,
}

impl BrokerUrl {
    pub fn parse(url: &str) -> Result<BrokerUrl, BadBrokerUrl> {
        let bad = || BadBrokerUrl(url.to_string());
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url
            .strip_prefix("mqtt://")
            .or_else(|| url.strip_prefix("tcp://"))
        {
            (false, r)
        } else {
            (false, url)
        };
        let rest = rest.trim_end_matches('/');
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) if !u.is_empty() && !u.contains(':') => (Some(u.to_string()), h),
            // A password in the URL would sit in the config in clear text.
            Some(_) => return Err(bad()),
            None => (None, rest),
        };
        let (host, port) = hostport.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() {
            return Err(bad());
        }
        Ok(BrokerUrl {
            tls,
            user,
            host: host.trim_start_matches('[').trim_end_matches(']').into(),
            port: port.parse().map_err(|_| bad())?,
        })
    }
}

/// How the controller reaches the broker and proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusSettings {
    /// The controller's user name; each device driver connects as `{user}.{device}`.
    pub user: String,
    /// One file per user, named after it, holding its password (default: `mqtt-secrets` in
    /// the data directory).
    pub secrets_dir: Option<PathBuf>,
    /// The controller's password from this environment variable instead of its file.
    pub password_env: Option<String>,
    /// TLS (an `mqtts://` broker): the CA that signed the broker's certificate.
    pub ca_file: Option<PathBuf>,
    /// TLS client certificate and key (PEM), for brokers that require them.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl BusSettings {
    /// The secrets directory, for a controller whose data lives in `data_dir`.
    pub fn secrets_dir(&self, data_dir: &Path) -> PathBuf {
        self.secrets_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("mqtt-secrets"))
    }

    /// Whether `user` is the controller or one of its connections.
    pub fn is_controller(&self, user: &str) -> bool {
        user == self.user
            || user
                .strip_prefix(self.user.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
    }
}
