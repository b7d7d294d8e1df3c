//! The media port: every WebRTC session shares one UDP port (one socket per announced local
//! address). Datagrams are routed to sessions by (local, remote) address; an address seen for the
//! first time is claimed by the session whose ICE ufrag its STUN Binding request names.
//!
//! Inbound traffic of a WHEP server is small (STUN, DTLS, RTCP from viewers), so the routing table
//! is a plain mutex; the outbound media path never touches it (egress shards send on the sockets
//! directly, see `batch_sender`).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::BytesMut;
use prometheus::IntCounter;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::stun_username;

/// A datagram for the session with this routing key.
pub type RoutedDatagram = (u64, TaggedBytesMut);
/// Largest datagram read (anything longer is truncated by the kernel and then rejected by DTLS/SRTP).
const MAX_DATAGRAM: usize = 2048;
/// Most remote addresses one session may claim (a browser may check from a few candidates).
const MAX_ADDRESSES_PER_SESSION: usize = 8;
/// The media sockets' receive buffer asked for (the kernel caps it at `net.core.rmem_max`):
/// hundreds of viewers connecting at once send their DTLS flights (certificates, ~2 KB each) in
/// one burst, which the default ~208 KiB dropped (relay_load, 500 viewers: ~200 datagrams, and
/// 5 % of the handshakes stalled).
const RECEIVE_BUFFER_BYTES: libc::c_int = 4 * 1024 * 1024;

/// Where datagrams for one session go: its shard's inbox, tagged with its key.
#[derive(Clone)]
pub struct SessionRoute {
    key: u64,
    inbox: mpsc::Sender<RoutedDatagram>,
}

#[derive(Default)]
struct Routes {
    by_ufrag: HashMap<String, SessionRoute>,
    by_addr: HashMap<(SocketAddr, SocketAddr), SessionRoute>,
}

/// The shared UDP sockets and the table routing datagrams to sessions.
pub struct UdpTransport {
    /// Each socket with its bound address (read once: `local_addr()` is a system call).
    sockets: Vec<(SocketAddr, Arc<UdpSocket>)>,
    routes: Mutex<Routes>,
    unmatched: IntCounter,
}

impl UdpTransport {
    /// Binds `listen`; a wildcard address binds its port on every interface address of its family.
    pub async fn bind(listen: SocketAddr, unmatched: IntCounter) -> io::Result<Arc<UdpTransport>> {
        let addresses = if listen.ip().is_unspecified() {
            interface_addresses(listen)?
        } else {
            vec![listen]
        };
        let mut sockets = Vec::with_capacity(addresses.len());
        for address in addresses {
            let socket = UdpSocket::bind(address)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("cannot bind UDP {address}: {e}")))?;
            enlarge_receive_buffer(&socket);
            sockets.push((socket.local_addr()?, Arc::new(socket)));
        }
        Ok(Arc::new(UdpTransport {
            sockets,
            routes: Mutex::new(Routes::default()),
            unmatched,
        }))
    }

    /// The bound local addresses (one per socket).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|(address, _)| *address).collect()
    }

    /// The sockets.
    pub fn sockets(&self) -> impl Iterator<Item = &UdpSocket> {
        self.sockets.iter().map(|(_, socket)| socket.as_ref())
    }

    /// The socket bound to `local` (the first socket if none is: a datagram always has a way out).
    pub fn socket_for(&self, local: SocketAddr) -> Option<&UdpSocket> {
        self.sockets
            .iter()
            .find(|(address, _)| *address == local)
            .or_else(|| self.sockets.first())
            .map(|(_, socket)| socket.as_ref())
    }

    /// Routes datagrams whose STUN username starts with `ufrag` to `inbox`, under `key`.
    pub fn register(&self, key: u64, ufrag: String, inbox: mpsc::Sender<RoutedDatagram>) {
        self.lock_routes()
            .by_ufrag
            .insert(ufrag, SessionRoute { key, inbox });
    }

    /// Forgets every route of session `key`.
    pub fn unregister(&self, key: u64) {
        let mut routes = self.lock_routes();
        routes.by_ufrag.retain(|_, r| r.key != key);
        routes.by_addr.retain(|_, r| r.key != key);
    }

    /// Starts one receive task per socket. A task ends when the transport is dropped (checked at
    /// each datagram) or when its handle is aborted, which the owner does on drop.
    pub fn spawn_receivers(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        self.sockets
            .iter()
            .map(|(local, socket)| {
                let transport = Arc::downgrade(self);
                let socket = socket.clone();
                let local = *local;
                tokio::spawn(async move {
                    let mut buffer = BytesMut::with_capacity(64 * MAX_DATAGRAM);
                    loop {
                        if buffer.capacity() < MAX_DATAGRAM {
                            buffer.reserve(64 * MAX_DATAGRAM);
                        }
                        let remote = match socket.recv_buf_from(&mut buffer).await {
                            Ok((_, remote)) => remote,
                            Err(e) => {
                                // ICMP port unreachable and similar surface here on Linux: not fatal.
                                tracing::trace!(error = %e, "UDP receive error");
                                continue;
                            }
                        };
                        let datagram = buffer.split();
                        let Some(transport) = transport.upgrade() else {
                            return;
                        };
                        transport.route(local, remote, datagram);
                    }
                })
            })
            .collect()
    }

    fn route(&self, local: SocketAddr, remote: SocketAddr, datagram: BytesMut) {
        let route = {
            let mut routes = self.lock_routes();
            match routes.by_addr.get(&(local, remote)) {
                Some(route) => Some(route.clone()),
                None => {
                    let claimed = stun_username::local_ufrag(&datagram)
                        .and_then(|ufrag| routes.by_ufrag.get(ufrag).cloned());
                    if let Some(route) = &claimed {
                        let claimed_addresses = routes
                            .by_addr
                            .values()
                            .filter(|r| r.key == route.key)
                            .count();
                        if claimed_addresses < MAX_ADDRESSES_PER_SESSION {
                            routes.by_addr.insert((local, remote), route.clone());
                        }
                    }
                    claimed
                }
            }
        };
        let Some(route) = route else {
            self.unmatched.inc();
            return;
        };
        let tagged = TaggedBytesMut {
            now: Instant::now(),
            transport: TransportContext {
                local_addr: local,
                peer_addr: remote,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: datagram,
        };
        // A shard that cannot keep up loses inbound datagrams; STUN and RTCP are resent.
        let _ = route.inbox.try_send((route.key, tagged));
    }

    fn lock_routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        // The table stays consistent even if a holder panicked: every update is a single insert/retain.
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Asks for a [`RECEIVE_BUFFER_BYTES`] receive buffer on `socket`; what the kernel grants is
/// logged (a smaller `net.core.rmem_max` caps it: raise it on a box serving many viewers).
fn enlarge_receive_buffer(socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    let size = RECEIVE_BUFFER_BYTES;
    // SAFETY: `fd` is an open socket owned by `socket`; the option value is a c_int that lives
    // across the call, and its length is given.
    let set = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    let mut granted: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: as above; `granted` and `len` are valid for writes of their sizes.
    let got = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut granted as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if set != 0 || got != 0 {
        tracing::warn!(error = %io::Error::last_os_error(), "media socket: receive buffer not set");
    } else if granted < 2 * size {
        // Linux reports twice the size it set (its bookkeeping share included).
        tracing::info!(
            bytes = granted / 2,
            wanted = size,
            "media socket receive buffer capped by net.core.rmem_max: many viewers connecting \
             at once may lose handshake packets (the Debian package raises it)"
        );
    } else {
        tracing::debug!(bytes = granted / 2, "media socket receive buffer");
    }
}

/// The interface addresses of `listen`'s family, with `listen`'s port (link-local IPv6 excluded:
/// it needs a scope id browsers do not get in a candidate).
fn interface_addresses(listen: SocketAddr) -> io::Result<Vec<SocketAddr>> {
    let mut addresses: Vec<SocketAddr> = if_addrs::get_if_addrs()?
        .into_iter()
        .map(|interface| interface.ip())
        .filter(|ip| ip.is_ipv4() == listen.is_ipv4())
        .filter(|ip| match ip {
            IpAddr::V6(v6) => !v6.is_unicast_link_local(),
            IpAddr::V4(_) => true,
        })
        .map(|ip| SocketAddr::new(ip, listen.port()))
        .collect();
    addresses.sort();
    addresses.dedup();
    if addresses.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("no interface address to bind for {listen}"),
        ));
    }
    Ok(addresses)
}
