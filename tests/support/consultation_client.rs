//! A consultation participant's signalling, as a page speaks it: the WebSocket
//! (`straja.consultation.v1`, the token as a `bearer.` subprotocol) over TLS to the gateway,
//! sending and receiving the protocol's JSON messages.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// One participant's signalling connection.
pub struct ConsultationClient {
    socket: Socket,
    /// Messages received and not yet taken.
    pending: Vec<Value>,
}

impl ConsultationClient {
    /// Opens the signalling socket of consultation `id` at `base_url` (`https://127.0.0.1:PORT`)
    /// with `token`, trusting `ca_cert`. Panics with the server's reason when it is refused.
    pub async fn connect(base_url: &str, ca_cert: &std::path::Path, id: &str, token: &str) -> Self {
        Self::try_connect(base_url, ca_cert, id, token, true)
            .await
            .unwrap_or_else(|e| panic!("signalling socket refused: {e}"))
    }

    /// Like [`ConsultationClient::connect`], returning the refusal (status and body) instead;
    /// `subprotocol` false leaves out `straja.consultation.v1`.
    pub async fn try_connect(
        base_url: &str,
        ca_cert: &std::path::Path,
        id: &str,
        token: &str,
        subprotocol: bool,
    ) -> Result<Self, String> {
        let host = base_url.trim_start_matches("https://").to_owned();
        let tcp = tokio::net::TcpStream::connect(&host)
            .await
            .map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(super::tls_client::trusting(ca_cert))
            .connect(super::tls_client::loopback(), tcp)
            .await
            .map_err(|e| e.to_string())?;
        let mut request = format!("wss://{host}/api/v1/consultations/{id}/signal")
            .into_client_request()
            .expect("request");
        let protocols = if subprotocol {
            format!("straja.consultation.v1, bearer.{token}")
        } else {
            format!("bearer.{token}")
        };
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocols.parse().expect("header"));
        match tokio_tungstenite::client_async(request, tls).await {
            Ok((socket, response)) => {
                let chosen = response
                    .headers()
                    .get("sec-websocket-protocol")
                    .and_then(|v| v.to_str().ok());
                assert_eq!(chosen, Some("straja.consultation.v1"));
                Ok(ConsultationClient {
                    socket,
                    pending: Vec::new(),
                })
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(format!(
                "{} {}",
                response.status(),
                String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
            )),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Sends one message.
    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("signalling send");
    }

    /// Waits (bounded) for the first message of `kind` matching `filter`, keeping the others.
    pub async fn expect(&mut self, kind: &str, filter: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(i) = self
                .pending
                .iter()
                .position(|m| m["type"] == kind && filter(m))
            {
                return self.pending.remove(i);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {kind} message; received {:#?}",
                self.pending
            );
            match tokio::time::timeout(left, self.socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    self.pending
                        .push(serde_json::from_str(text.as_str()).expect("JSON message"));
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) => {
                    panic!(
                        "socket closed while waiting for {kind}; had {:#?}",
                        self.pending
                    )
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => panic!("socket error waiting for {kind}: {e}"),
                Err(_) => {}
            }
        }
    }

    /// Waits (bounded) until the gateway closes the socket; returns the messages before it.
    pub async fn closed(mut self) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the socket stayed open: {:#?}",
                self.pending
            );
            match tokio::time::timeout(left, self.socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => self
                    .pending
                    .push(serde_json::from_str(text.as_str()).expect("JSON message")),
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                    return self.pending;
                }
                Ok(Some(Ok(_))) | Err(_) => {}
            }
        }
    }
}
