//! Counts HTTPS connections whose TLS handshake fails, by reason
//! (`straja_tls_handshake_failures_total`): an acceptor around axum-server's rustls acceptor.
//! A burst of `client_certificate` failures is a misconfigured client or a probe; `protocol` is
//! something that does not speak TLS (plain HTTP to the HTTPS port) or an old TLS version.

use std::future::Future;
use std::io;
use std::pin::Pin;

use axum_server::accept::Accept;
use prometheus::IntCounterVec;

/// Wraps an acceptor (the rustls one) and counts its failures.
#[derive(Clone)]
pub struct CountingAcceptor<A> {
    inner: A,
    failures: IntCounterVec,
}

impl<A> CountingAcceptor<A> {
    /// Counts `inner`'s failures in `failures` (labelled `reason`).
    pub fn new(inner: A, failures: IntCounterVec) -> Self {
        CountingAcceptor { inner, failures }
    }
}

impl<A, I, S> Accept<I, S> for CountingAcceptor<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(A::Stream, A::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let accepting = self.inner.accept(stream, service);
        let failures = self.failures.clone();
        Box::pin(async move {
            let accepted = accepting.await;
            if let Err(e) = &accepted {
                failures.with_label_values(&[reason(e)]).inc();
            }
            accepted
        })
    }
}

/// The `reason` label of a failed handshake.
pub fn reason(error: &io::Error) -> &'static str {
    if error.kind() == io::ErrorKind::TimedOut {
        return "timeout";
    }
    if let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return match tls {
            rustls::Error::NoCertificatesPresented | rustls::Error::InvalidCertificate(_) => {
                "client_certificate"
            }
            rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. }
            | rustls::Error::InvalidMessage(_)
            | rustls::Error::PeerIncompatible(_)
            | rustls::Error::PeerMisbehaved(_)
            | rustls::Error::AlertReceived(_) => "protocol",
            _ => "other",
        };
    }
    match error.kind() {
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => "closed",
        io::ErrorKind::InvalidData => "protocol",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_told_apart() {
        let tls = |e: rustls::Error| io::Error::new(io::ErrorKind::InvalidData, e);
        assert_eq!(
            reason(&tls(rustls::Error::NoCertificatesPresented)),
            "client_certificate"
        );
        assert_eq!(
            reason(&tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))),
            "client_certificate"
        );
        assert_eq!(
            reason(&tls(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            ))),
            "protocol"
        );
        assert_eq!(reason(&io::Error::from(io::ErrorKind::TimedOut)), "timeout");
        assert_eq!(
            reason(&io::Error::from(io::ErrorKind::UnexpectedEof)),
            "closed"
        );
        assert_eq!(reason(&io::Error::other("?")), "other");
        for reason in [
            "client_certificate",
            "protocol",
            "timeout",
            "closed",
            "other",
        ] {
            assert!(crate::metrics::TLS_HANDSHAKE_FAILURE_REASONS.contains(&reason));
        }
    }
}
