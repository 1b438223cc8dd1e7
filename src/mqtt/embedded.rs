//! The embedded broker: rumqttd on a loopback port of its own, reached only through the
//! bus's front door (see the parent module). Built with the `demo` feature.

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::bus::{self, BusError, Endpoint};
use crate::config::RoomConfig;

/// A running embedded broker. It lives as long as the process (rumqttd has no shutdown).
#[derive(Debug, Clone)]
pub struct EmbeddedBroker {
    /// Where clients connect (the front door).
    pub addr: SocketAddr,
    /// How the controller connects.
    pub endpoint: Endpoint,
    /// Every user's password, devices' included (for the simulated devices).
    pub passwords: BTreeMap<String, String>,
}

/// Why the broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot listen for MQTT on {0}: {1}")]
    Port(SocketAddr, std::io::Error),
    #[error("the embedded MQTT broker did not come up on {0}")]
    NotUp(SocketAddr),
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl EmbeddedBroker {
    /// Starts the broker of `config`'s room on `listen` (port 0: a free one), making the
    /// passwords that do not exist yet in the secrets directory.
    pub fn start(listen: SocketAddr, config: &RoomConfig) -> Result<EmbeddedBroker, BrokerError> {
        let grants = bus::grants(config, &config.bus.user);
        let passwords = bus::passwords(config, &grants, true)?;
        let front = TcpListener::bind(listen).map_err(|e| BrokerError::Port(listen, e))?;
        let addr = front
            .local_addr()
            .map_err(|e| BrokerError::Port(listen, e))?;
        let inner = start_rumqttd()?;
        let door = bus::front::Door::new(&config.bus.user, grants, &passwords, inner.0, inner.1);
        front
            .set_nonblocking(true)
            .map_err(|e| BrokerError::Port(addr, e))?;
        std::thread::Builder::new()
            .name("mqtt-front-door".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("mqtt-front-door")
                    .enable_all()
                    .build();
                match runtime {
                    Ok(rt) => rt.block_on(async move {
                        match tokio::net::TcpListener::from_std(front) {
                            Ok(l) => Arc::new(door).serve(l).await,
                            Err(e) => {
                                tracing::error!(error = %e, "the MQTT front door cannot listen")
                            }
                        }
                    }),
                    Err(e) => tracing::error!(error = %e, "the MQTT front door cannot start"),
                }
            })
            .map_err(|e| BrokerError::Port(addr, e))?;
        let own = passwords.get(&config.bus.user).cloned().unwrap_or_default();
        Ok(EmbeddedBroker {
            addr,
            endpoint: Endpoint::plain(
                if addr.ip().is_unspecified() {
                    "127.0.0.1".to_string()
                } else {
                    addr.ip().to_string()
                },
                addr.port(),
                &config.bus.user,
                &own,
            ),
            passwords,
        })
    }

    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    /// The broker as the simulated devices see it: each with its own password.
    pub fn for_devices(&self) -> hw_sim::mqtt_devices::Broker {
        hw_sim::mqtt_devices::Broker {
            host: self.endpoint.host.clone(),
            port: self.endpoint.port,
            passwords: self.passwords.clone(),
        }
    }
}

/// rumqttd on a free loopback port, letting in only the user it returns.
fn start_rumqttd() -> Result<(SocketAddr, (String, String)), BrokerError> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let probe = TcpListener::bind(loopback).map_err(|e| BrokerError::Port(loopback, e))?;
    let addr = probe
        .local_addr()
        .map_err(|e| BrokerError::Port(loopback, e))?;
    drop(probe);
    let login = ("front-door".to_string(), bus::random_secret());
    let server = ServerSettings {
        name: "v4".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 256 * 1024,
            max_inflight_count: 500,
            auth: Some(HashMap::from([login.clone()])),
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
        if lets_in(addr, &login) {
            return Ok((addr, login));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::NotUp(addr))
}

/// Whether rumqttd at `addr` is up and lets `login` in: a CONNECT answered by a CONNACK
/// that accepts it. (A bare TCP connect would do to learn that the port listens, but
/// rumqttd logs an error for a connection closed before its CONNECT.)
fn lets_in(addr: SocketAddr, login: &(String, String)) -> bool {
    use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode, Login, Packet};
    use std::io::{Read, Write};
    let Ok(mut broker) = TcpStream::connect_timeout(&addr, Duration::from_millis(100)) else {
        return false;
    };
    let mut connect = Connect::new("front-door-probe");
    connect.login = Some(Login::new(login.0.clone(), login.1.clone()));
    let mut out = bytes::BytesMut::new();
    if connect.write(&mut out).is_err()
        || broker
            .set_read_timeout(Some(Duration::from_secs(1)))
            .is_err()
        || broker.write_all(&out).is_err()
    {
        return false;
    }
    let mut answer = bytes::BytesMut::new();
    let accepted = loop {
        match Packet::read(&mut answer, 1024) {
            Ok(Packet::ConnAck(ack)) => break ack.code == ConnectReturnCode::Success,
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
            _ => return false,
        }
        let mut chunk = [0u8; 64];
        match broker.read(&mut chunk) {
            Ok(n) if n > 0 => answer.extend_from_slice(&chunk[..n]),
            _ => return false,
        }
    };
    // Closed without a DISCONNECT: rumqttd logs a peer's close as news (info) and its own
    // close after a DISCONNECT as an error.
    accepted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readiness_probe_asks_the_broker_to_let_its_user_in() {
        let (addr, login) = start_rumqttd().unwrap();
        assert!(lets_in(addr, &login), "the broker's own user is let in");
        assert!(
            !lets_in(addr, &(login.0.clone(), "not-the-password".into())),
            "a wrong password is not"
        );
        let nobody = TcpListener::bind("127.0.0.1:0").unwrap();
        let silent = nobody.local_addr().unwrap();
        drop(nobody);
        assert!(!lets_in(silent, &login), "nothing listening");
    }
}
