//! The embedded broker's front door: an MQTT 3.1.1 proxy that authenticates every client
//! and enforces its [`Grant`] before anything reaches the broker behind it.
//!
//! rumqttd checks a user name and password but knows no topic rights, so it listens on a
//! loopback port with a random secret of the front door's own, and clients reach it only
//! through here. Per connection the front door
//! - refuses a CONNECT with an unknown user or a wrong password (return code 4), or with a
//!   last will on a topic the user may not write (5);
//! - sets the client id to the user name, so no client can take over another's session;
//! - drops a PUBLISH on a topic the user may not write (a QoS 1 one is acknowledged, so the
//!   client does not resend it; QoS 2 ends the connection);
//! - answers a SUBSCRIBE filter outside what the user may read with failure (0x80) and
//!   passes the rest on;
//! - delivers only messages on topics the user may read.
//!
//! Every refusal is logged, once per client and reason per minute.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, SubAck, Subscribe,
    SubscribeReasonCode,
};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Grant, REFUSAL_LOG_EVERY};

/// The largest packet either side may send.
const MAX_PACKET: usize = 256 * 1024;
/// How long a new connection has to send its CONNECT.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);

/// Who may connect, with their passwords, and the secret for the broker behind.
pub struct Door {
    users: HashMap<String, (String, Grant)>,
    /// The controller's user: `{controller}.{anything}` logs in with its password and rights
    /// (one connection per driver, each its own client id).
    controller: String,
    upstream: SocketAddr,
    upstream_login: (String, String),
    refusals: Mutex<HashMap<String, Instant>>,
}

impl Door {
    pub fn new(
        controller: &str,
        grants: Vec<Grant>,
        passwords: &std::collections::BTreeMap<String, String>,
        upstream: SocketAddr,
        upstream_login: (String, String),
    ) -> Door {
        let users = grants
            .into_iter()
            .filter_map(|g| Some((g.user.clone(), (passwords.get(&g.user)?.clone(), g))))
            .collect();
        Door {
            users,
            controller: controller.to_string(),
            upstream,
            upstream_login,
            refusals: Mutex::new(HashMap::new()),
        }
    }

    /// Accepts connections for ever.
    pub async fn serve(self: Arc<Door>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let door = self.clone();
                    tokio::spawn(async move {
                        if let Err(why) = door.connection(stream, peer).await {
                            tracing::debug!(%peer, %why, "MQTT connection ended");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors, mostly: wait rather than spin.
                    tracing::warn!(error = %e, "the MQTT front door cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Logs a refusal unless this client was refused for the same reason within a minute.
    fn refused(&self, who: &str, reason: &str, detail: &str) {
        let key = format!("{who}\u{0}{reason}");
        let now = Instant::now();
        let mut seen = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 10_000 {
            seen.retain(|_, at| now.duration_since(*at) < REFUSAL_LOG_EVERY);
        }
        match seen.get(&key) {
            Some(at) if now.duration_since(*at) < REFUSAL_LOG_EVERY => {}
            _ => {
                seen.insert(key, now);
                tracing::warn!(client = %who, %reason, %detail, "MQTT refused");
            }
        }
    }

    async fn connection(&self, mut client: TcpStream, peer: SocketAddr) -> Result<(), String> {
        let mut from_client = BytesMut::with_capacity(4096);
        let first =
            tokio::time::timeout(CONNECT_WITHIN, read_packet(&mut client, &mut from_client))
                .await
                .map_err(|_| "no CONNECT in time".to_string())??;
        let Packet::Connect(mut connect) = first else {
            self.refused(
                &peer.to_string(),
                "protocol",
                "the first packet was not CONNECT",
            );
            return Err("the first packet was not CONNECT".into());
        };
        let who = |user: &str| format!("{user}@{}", peer.ip());
        let Some(login) = connect.login.take() else {
            self.refused(
                &who("anonymous"),
                "no_credentials",
                "CONNECT without user name",
            );
            return refuse(&mut client, ConnectReturnCode::BadUserNamePassword).await;
        };
        let family = login
            .username
            .strip_prefix(self.controller.as_str())
            .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1);
        let entry = match self.users.get(&login.username) {
            Some(e) => Some(e.clone()),
            None if family => self.users.get(&self.controller).map(|(p, g)| {
                let mut g = g.clone();
                g.user = login.username.clone();
                (p.clone(), g)
            }),
            None => None,
        };
        let grant = match entry {
            Some((password, grant)) if same(password.as_bytes(), login.password.as_bytes()) => {
                grant
            }
            Some(_) => {
                self.refused(&who(&login.username), "bad_password", "wrong password");
                return refuse(&mut client, ConnectReturnCode::BadUserNamePassword).await;
            }
            None => {
                self.refused(&who(&login.username), "unknown_user", "no such user");
                return refuse(&mut client, ConnectReturnCode::BadUserNamePassword).await;
            }
        };
        if let Some(will) = &connect.last_will
            && !grant.may_write(&will.topic)
        {
            self.refused(&who(&grant.user), "will_denied", &will.topic);
            return refuse(&mut client, ConnectReturnCode::NotAuthorized).await;
        }
        let who = who(&grant.user);
        if connect.client_id != grant.user {
            tracing::debug!(client = %who, asked = %connect.client_id, "client id set to the user name");
        }
        connect.client_id = grant.user.clone();
        connect.login = Some(rumqttc::mqttbytes::v4::Login::new(
            self.upstream_login.0.clone(),
            self.upstream_login.1.clone(),
        ));
        let mut broker = TcpStream::connect(self.upstream)
            .await
            .map_err(|e| format!("the broker behind the door: {e}"))?;
        write_packet(&mut broker, Packet::Connect(connect)).await?;
        self.relay(client, from_client, broker, &grant, &who).await
    }

    /// Passes packets both ways until either side closes, checking each against `grant`.
    async fn relay(
        &self,
        client: TcpStream,
        mut from_client: BytesMut,
        broker: TcpStream,
        grant: &Grant,
        who: &str,
    ) -> Result<(), String> {
        let (mut client_rx, mut client_tx) = client.into_split();
        let (mut broker_rx, mut broker_tx) = broker.into_split();
        let mut from_broker = BytesMut::with_capacity(4096);
        // SUBSCRIBEs passed on in part: the failures to merge into the broker's SUBACK.
        let mut partial: HashMap<u16, Vec<Option<SubscribeReasonCode>>> = HashMap::new();
        // QoS 2 deliveries kept from the client: their release is answered here.
        let mut withheld: std::collections::HashSet<u16> = Default::default();
        loop {
            tokio::select! {
                p = read_packet(&mut client_rx, &mut from_client) => {
                    match p? {
                        Packet::Publish(p) if !grant.may_write(&p.topic) => {
                            self.refused(who, "publish_denied", &p.topic);
                            match p.qos {
                                QoS::AtMostOnce => {}
                                QoS::AtLeastOnce => write_packet(&mut client_tx, Packet::PubAck(PubAck::new(p.pkid))).await?,
                                QoS::ExactlyOnce => return Err(format!("QoS 2 publish on {} denied", p.topic)),
                            }
                        }
                        Packet::Subscribe(s) => {
                            let verdicts: Vec<bool> = s.filters.iter().map(|f| grant.may_subscribe(&f.path)).collect();
                            for f in s.filters.iter().filter(|f| !grant.may_subscribe(&f.path)) {
                                self.refused(who, "subscribe_denied", &f.path);
                            }
                            if verdicts.iter().all(|ok| *ok) {
                                write_packet(&mut broker_tx, Packet::Subscribe(s)).await?;
                            } else if verdicts.iter().all(|ok| !ok) {
                                let codes = vec![SubscribeReasonCode::Failure; verdicts.len()];
                                write_packet(&mut client_tx, Packet::SubAck(SubAck::new(s.pkid, codes))).await?;
                            } else {
                                let pkid = s.pkid;
                                let allowed = s.filters.into_iter().zip(&verdicts).filter(|(_, ok)| **ok).map(|(f, _)| f).collect();
                                partial.insert(pkid, verdicts.iter().map(|ok| (!ok).then_some(SubscribeReasonCode::Failure)).collect());
                                write_packet(&mut broker_tx, Packet::Subscribe(Subscribe { pkid, filters: allowed })).await?;
                            }
                        }
                        Packet::Connect(_) => return Err("a second CONNECT".into()),
                        other => write_packet(&mut broker_tx, other).await?,
                    }
                }
                p = read_packet(&mut broker_rx, &mut from_broker) => {
                    match p? {
                        Packet::Publish(p) if !grant.may_read(&p.topic) => match p.qos {
                            QoS::AtMostOnce => {}
                            QoS::AtLeastOnce => write_packet(&mut broker_tx, Packet::PubAck(PubAck::new(p.pkid))).await?,
                            QoS::ExactlyOnce => {
                                withheld.insert(p.pkid);
                                write_packet(&mut broker_tx, Packet::PubRec(PubRec::new(p.pkid))).await?;
                            }
                        },
                        Packet::PubRel(r) if withheld.remove(&r.pkid) => {
                            write_packet(&mut broker_tx, Packet::PubComp(PubComp::new(r.pkid))).await?;
                        }
                        Packet::SubAck(mut ack) => {
                            if let Some(slots) = partial.remove(&ack.pkid) {
                                let mut given = ack.return_codes.into_iter();
                                ack.return_codes = slots
                                    .into_iter()
                                    .map(|slot| slot.or_else(|| given.next()).unwrap_or(SubscribeReasonCode::Failure))
                                    .collect();
                            }
                            write_packet(&mut client_tx, Packet::SubAck(ack)).await?;
                        }
                        other => write_packet(&mut client_tx, other).await?,
                    }
                }
            }
        }
    }
}

/// Compares two secrets in time that depends only on their lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

async fn refuse(client: &mut TcpStream, code: ConnectReturnCode) -> Result<(), String> {
    write_packet(client, Packet::ConnAck(ConnAck::new(code, false))).await?;
    let _ = client.shutdown().await;
    Ok(())
}

/// Reads one packet, with what is left over kept in `buf`.
async fn read_packet<R: tokio::io::AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut BytesMut,
) -> Result<Packet, String> {
    loop {
        match Packet::read(buf, MAX_PACKET) {
            Ok(p) => return Ok(p),
            Err(CodecError::InsufficientBytes(_)) => {}
            Err(e) => return Err(format!("malformed MQTT: {e}")),
        }
        if stream.read_buf(buf).await.map_err(|e| e.to_string())? == 0 {
            return Err("closed".into());
        }
    }
}

async fn write_packet<W: tokio::io::AsyncWrite + Unpin>(
    stream: &mut W,
    packet: Packet,
) -> Result<(), String> {
    let mut out = BytesMut::new();
    packet
        .write(&mut out, MAX_PACKET)
        .map_err(|e| format!("cannot encode: {e}"))?;
    stream.write_all(&out).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_content() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(same(b"", b""));
    }
}
