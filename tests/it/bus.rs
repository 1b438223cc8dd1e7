//! The device bus holds against a plain MQTT client: the same attacks against the embedded
//! broker (behind its front door) and against Debian's Mosquitto run with the configuration
//! `stackroom broker-config` writes.
//!
//! Each attack is paired with the same message from the client that may send it, which must
//! arrive: a test that saw nothing at all would prove nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::{AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Packet, QoS};
use stackroom::config::RoomConfig;
use stackroom::demo;
use stackroom::mqtt::EmbeddedBroker;
use tokio::sync::mpsc;

use crate::common::mosquitto;

/// How to log in: user and password, or none.
type Login<'a> = Option<(&'a str, &'a str)>;

/// Connects and waits for the broker's answer: the client, or the refusal.
async fn connect(port: u16, client_id: &str, login: Login<'_>) -> Result<Client, String> {
    let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(5));
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    let (client, mut events) = AsyncClient::new(options, 64);
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(a))) if a.code == ConnectReturnCode::Success => {
                    return Ok(());
                }
                Ok(Event::Incoming(Packet::ConnAck(a))) => return Err(format!("{:?}", a.code)),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err("no answer".into()));
    answer?;
    Ok(Client::run(client, events))
}

/// A connected client whose incoming messages and connection errors are collected.
struct Client {
    client: AsyncClient,
    seen: mpsc::UnboundedReceiver<(String, String)>,
    errors: mpsc::UnboundedReceiver<String>,
}

impl Client {
    fn run(client: AsyncClient, mut events: EventLoop) -> Client {
        let (seen_tx, seen) = mpsc::unbounded_channel();
        let (errors_tx, errors) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let body = String::from_utf8_lossy(&p.payload).into_owned();
                        let _ = seen_tx.send((p.topic.clone(), body));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let _ = errors_tx.send(e.to_string());
                        return;
                    }
                }
            }
        });
        Client {
            client,
            seen,
            errors,
        }
    }

    async fn subscribe(&self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
    }

    async fn publish(&self, topic: &str, body: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, body)
            .await
            .unwrap();
    }

    /// Everything that arrives until `marker` does (or 5 s pass), marker excluded.
    async fn until(&mut self, marker: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while let Ok(Some(m)) = tokio::time::timeout_at(deadline, self.seen.recv()).await {
            if m.1 == marker {
                return out;
            }
            out.push(m);
        }
        panic!("the marker {marker} never came; saw {out:?}");
    }
}

/// The attacks, on a broker at `port` that serves `config`'s room with `passwords`.
async fn attacks(port: u16, passwords: &BTreeMap<String, String>) {
    let pw = |user: &str| passwords[user].as_str();
    let as_user = |user: &'static str| Some((user, pw(user)));

    // No credentials, a wrong password, an unknown user: refused at the door.
    assert!(connect(port, "anon", None).await.is_err(), "anonymous");
    assert!(
        connect(port, "x", Some(("shelving-2", "guess")))
            .await
            .is_err(),
        "wrong password"
    );
    assert!(
        connect(port, "x", Some(("intruder", pw("shelving-2"))))
            .await
            .is_err(),
        "unknown user"
    );

    // The controller watches every device topic.
    let mut controller = connect(port, "stackroom", as_user("stackroom"))
        .await
        .expect("the controller logs in");
    controller.subscribe("devices/#").await;
    controller.subscribe("zigbee2mqtt/#").await;
    let shelving = connect(port, "shelving-2", as_user("shelving-2"))
        .await
        .unwrap();
    let mut shelving = shelving;
    shelving.subscribe("devices/shelving-2/command").await;
    let mut reader = connect(port, "reader-3", as_user("reader-3"))
        .await
        .expect("a device logs in");
    reader.subscribe("#").await;
    reader.subscribe("devices/shelving-2/command").await;
    let zigbee = connect(port, "env-zigbee", as_user("env-zigbee"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A device forges commands, another device's state and events, a water alarm.
    reader
        .publish("devices/shelving-2/command", r#"{"command":"unlock"}"#)
        .await;
    reader
        .publish(
            "devices/shelving-2/command",
            r#"{"command":"open_aisle","aisle":2}"#,
        )
        .await;
    reader
        .publish("devices/shelving-2/state", r#"{"occupied_aisles":[]}"#)
        .await;
    zigbee
        .publish("devices/reader-3/events", r#"{"forged":true}"#)
        .await;
    reader
        .publish("zigbee2mqtt/water-bc", r#"{"water_leak":true}"#)
        .await;
    // What each may send arrives. A client's messages keep their order, so anything forged
    // that got through would arrive before its sender's own message.
    let mut forged = Vec::new();
    shelving
        .publish("devices/shelving-2/state", "own-state")
        .await;
    forged.extend(controller.until("own-state").await);
    reader.publish("devices/reader-3/events", "own-event").await;
    forged.extend(controller.until("own-event").await);
    zigbee.publish("zigbee2mqtt/water-bc", "own-reading").await;
    forged.extend(controller.until("own-reading").await);
    assert!(
        forged.is_empty(),
        "forged messages reached the controller: {forged:?}"
    );

    // The controller's command reaches its device, not the reader subscribed to `#` and
    // to that very command topic.
    controller
        .publish("devices/shelving-2/command", "the-command")
        .await;
    controller
        .publish("devices/shelving-2/command", "marker-2")
        .await;
    let got = shelving.until("marker-2").await;
    assert_eq!(got.len(), 1, "{got:?}");
    zigbee.publish("zigbee2mqtt/bridge/state", "online").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut leaked = Vec::new();
    while let Ok(m) = reader.seen.try_recv() {
        leaked.push(m);
    }
    assert!(
        leaked
            .iter()
            .all(|(t, _)| t.starts_with("devices/reader-3/")),
        "the reader read what is not its own: {leaked:?}"
    );

    // A device takes the controller's client id: the controller stays connected.
    let _intruder = connect(port, "stackroom", as_user("reader-3")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        controller.errors.try_recv().is_err(),
        "the controller was disconnected by a client-id takeover"
    );
    shelving
        .publish("devices/shelving-2/result", "marker-3")
        .await;
    controller.until("marker-3").await;
}

#[tokio::test]
async fn the_embedded_broker_lets_each_client_do_only_its_own_part() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = RoomConfig::load(&demo::config_path()).unwrap();
    config.data_dir = dir.path().into();
    let broker = EmbeddedBroker::start(SocketAddr::from(([127, 0, 0, 1], 0)), &config).unwrap();
    attacks(broker.addr.port(), &broker.passwords).await;
}

#[tokio::test]
async fn mosquitto_with_the_generated_config_lets_each_client_do_only_its_own_part() {
    let dir = tempfile::tempdir().unwrap();
    let port = mosquitto::free_port();
    let config = RoomConfig::load(&demo::config_path()).unwrap();
    let config = mosquitto::on_site_broker(config, dir.path(), port);
    let Some(_broker) = mosquitto::start(dir.path(), port, &config) else {
        return mosquitto::skip();
    };
    attacks(port, &mosquitto::for_devices(&config, port).passwords).await;
}

/// The controller reaches a site broker over TLS (`mqtts://user@host:port`, the site's CA),
/// and does not talk to one whose certificate another CA signed.
#[tokio::test]
async fn the_controller_reaches_a_tls_site_broker_and_trusts_only_its_ca() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use stackroom::bus::mosquitto::ListenerTls;
    let dir = tempfile::tempdir().unwrap();
    let port = mosquitto::free_port();
    let ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    };
    let site_ca = ca("site CA");
    let other_ca = ca("someone else's CA");
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &site_ca)
        .unwrap();
    let file = |name: &str, text: String| {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    };
    let ca_file = file("ca.pem", site_ca.pem());
    let other_file = file("other-ca.pem", other_ca.pem());
    let tls = ListenerTls {
        cert: file("broker.pem", cert.pem()),
        key: file("broker.key", key.serialize_pem()),
        ca: ca_file.clone(),
        require_client_cert: false,
    };
    let config = RoomConfig::load(&demo::config_path()).unwrap();
    let mut config = mosquitto::on_site_broker(config, dir.path(), port);
    config.mqtt = stackroom::config::Mqtt::External {
        url: format!("mqtts://stackroom@127.0.0.1:{port}"),
    };
    config.bus.ca_file = Some(ca_file);
    let Some(_broker) = mosquitto::start_with(dir.path(), port, &config, Some(tls)) else {
        return mosquitto::skip();
    };
    let attempt = |config: &RoomConfig| {
        let endpoint = stackroom::bus::endpoint(config).unwrap();
        async move {
            let (_client, mut events) = AsyncClient::new(endpoint.options(None), 8);
            tokio::time::timeout(Duration::from_secs(5), async {
                loop {
                    match events.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(a))) => return Ok(a.code),
                        Ok(_) => {}
                        Err(e) => return Err(e.to_string()),
                    }
                }
            })
            .await
            .unwrap_or_else(|_| Err("no answer".into()))
        }
    };
    assert_eq!(
        attempt(&config).await,
        Ok(ConnectReturnCode::Success),
        "the controller logs in over TLS"
    );
    let mut wrong = config.clone();
    wrong.bus.ca_file = Some(other_file);
    let refused = attempt(&wrong).await;
    assert!(
        refused.is_err(),
        "a broker the site's CA did not sign: {refused:?}"
    );
}

/// The API serves HTTPS itself when the room config names a certificate and key.
#[tokio::test]
async fn the_api_serves_https_with_its_own_certificate() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(dir.path().join("api.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("api.key"), key.serialize_pem()).unwrap();
    let mut config = RoomConfig::load(&demo::config_path()).unwrap();
    config.api_tls = Some((dir.path().join("api.pem"), dir.path().join("api.key")));
    let controller = stackroom::server::Controller::start(config, Some(dir.path()))
        .await
        .unwrap();
    let listener = stackroom::server::Controller::listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        controller
            .serve(listener, std::future::pending())
            .await
            .unwrap()
    });

    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("a TLS handshake");
    tls.write_all(b"GET /api/v1/health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Plain HTTP on the same port gets no answer.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /api/v1/health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut buf)).await;
    assert!(
        !String::from_utf8_lossy(&buf).contains("200 OK"),
        "plain HTTP was served"
    );
}
