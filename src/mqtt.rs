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

/// Publishes the room's events to MQTT: the controller's own status (retained) on
/// `stackroom/{site}/{room}/status`, `{"online":true,…}` from each connection and its last
/// will `{"online":false}` when it dies or loses the broker (every range of an offline
/// controller is then unknown, whatever its last retained state says); each range's state
/// (retained, again on every reconnection) on `stackroom/{site}/{room}/ranges/{range}/state`, each operation change on
/// `stackroom/{site}/{room}/operations`, each environment alarm change on
/// `stackroom/{site}/{room}/alarms`, each sensor change (retained) on
/// `stackroom/{site}/{room}/environment/{sensor}`, each overdue loan (once a day) on
/// `stackroom/{site}/{room}/loans/overdue`. It reconnects by itself; what happens while the
/// broker is away is not queued (the retained state is republished on the next change).
pub fn publish_events(
    host: String,
    port: u16,
    site: &str,
    room: &str,
    shelving: &crate::shelving::Shelving,
    environment: &crate::environment::Environment,
    loans: &crate::loans::Loans,
) -> tokio::task::JoinHandle<()> {
    use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
    let base = format!("stackroom/{site}/{room}");
    let status = format!("{base}/status");
    let mut options = MqttOptions::new(format!("stackroom-{site}-{room}"), host, port);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_last_will(LastWill::new(
        &status,
        r#"{"online":false}"#,
        QoS::AtLeastOnce,
        true,
    ));
    let (client, mut eventloop) = AsyncClient::new(options, 256);
    let mut events = shelving.subscribe();
    let mut env_events = environment.subscribe();
    let mut overdue = loans.subscribe_overdue();
    let ranges = shelving.clone();
    let announcer = client.clone();
    let state_base = base.clone();
    tokio::spawn(async move {
        let poller = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let online =
                            serde_json::json!({"online": true, "since": chrono::Utc::now()});
                        let _ = announcer.try_publish(
                            &status,
                            QoS::AtLeastOnce,
                            true,
                            online.to_string(),
                        );
                        for view in ranges.ranges() {
                            if let Ok(body) = serde_json::to_vec(&view) {
                                let topic = format!("{state_base}/ranges/{}/state", view.range);
                                let _ = announcer.try_publish(topic, QoS::AtLeastOnce, true, body);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "event publisher reconnects");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        // Whatever ends this task ends the connection with it (and the will goes out).
        struct Abort(tokio::task::JoinHandle<()>);
        impl Drop for Abort {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let _poller = Abort(poller);
        let publish = |event: &crate::shelving::Event| -> Option<(String, bool, Vec<u8>)> {
            match event {
                crate::shelving::Event::Range(r) => Some((
                    format!("{base}/ranges/{}/state", r.range),
                    true,
                    serde_json::to_vec(r).ok()?,
                )),
                crate::shelving::Event::Operation(o) => Some((
                    format!("{base}/operations"),
                    false,
                    serde_json::to_vec(o).ok()?,
                )),
            }
        };
        let alarms = format!("{base}/alarms");
        let sensors = format!("{base}/environment");
        loop {
            let event = tokio::select! {
                o = overdue.recv() => {
                    if let Ok(loan) = o
                        && let Ok(body) = serde_json::to_vec(&loan)
                    {
                        let _ = client.try_publish(format!("{base}/loans/overdue"), QoS::AtLeastOnce, false, body);
                    }
                    continue;
                }
                e = env_events.recv() => {
                    match e {
                        Ok(crate::environment::EnvEvent::Alarm(a)) => {
                            if let Ok(body) = serde_json::to_vec(&a) {
                                let _ = client.try_publish(alarms.clone(), QoS::AtLeastOnce, false, body);
                            }
                        }
                        Ok(crate::environment::EnvEvent::Point(p)) => {
                            if let Ok(body) = serde_json::to_vec(&p) {
                                let _ = client.try_publish(format!("{sensors}/{}", p.id), QoS::AtLeastOnce, true, body);
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "environment publisher fell behind");
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {}
                    }
                    continue;
                }
                e = events.recv() => e,
            };
            match event {
                Ok(event) => {
                    if let Some((topic, retain, body)) = publish(&event) {
                        let _ = client.try_publish(topic, QoS::AtLeastOnce, retain, body);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "event publisher fell behind");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    })
}
