//! The embedded MQTT broker (rumqttd) of a single-machine installation.
//!
//! A site with many rooms points every controller at its own broker instead
//! (`mqtt.broker = "mqtt://host:1883"`); a single room, the demo and the tests run this one.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// A running embedded broker. It lives as long as the process (rumqttd has no shutdown).
#[derive(Debug, Clone)]
pub struct EmbeddedBroker {
    pub addr: SocketAddr,
}

/// Why the broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot find a free port for the MQTT broker on {0}: {1}")]
    Port(SocketAddr, std::io::Error),
    #[error("the embedded MQTT broker did not come up on {0} (is the port taken?)")]
    NotUp(SocketAddr),
}

impl EmbeddedBroker {
    /// Starts a broker on `listen`; port 0 picks a free port.
    pub fn start(listen: SocketAddr) -> Result<EmbeddedBroker, BrokerError> {
        let addr = if listen.port() == 0 {
            let probe = TcpListener::bind(listen).map_err(|e| BrokerError::Port(listen, e))?;
            probe
                .local_addr()
                .map_err(|e| BrokerError::Port(listen, e))?
        } else {
            listen
        };
        let server = ServerSettings {
            name: "v4".into(),
            listen: addr,
            tls: None,
            next_connection_delay_ms: 1,
            connections: ConnectionSettings {
                connection_timeout_ms: 60_000,
                max_payload_size: 256 * 1024,
                max_inflight_count: 500,
                auth: None,
                external_auth: None,
                dynamic_filters: true,
            },
        };
        let config = Config {
            id: 0,
            router: RouterConfig {
                max_connections: 1000,
                max_outgoing_packet_count: 1000,
                max_segment_size: 16 * 1024 * 1024,
                max_segment_count: 10,
                ..RouterConfig::default()
            },
            v4: Some(HashMap::from([("v4".to_string(), server)])),
            ..Config::default()
        };
        std::thread::Builder::new()
            .name("mqtt-broker".into())
            .spawn(move || {
                let mut broker = Broker::new(config);
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, %addr, "the embedded MQTT broker stopped");
                }
            })
            .map_err(|e| BrokerError::Port(addr, e))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(EmbeddedBroker { addr });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(BrokerError::NotUp(addr))
    }

    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }
}
