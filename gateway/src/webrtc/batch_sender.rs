//! Sends an egress shard's datagrams in as few system calls as the socket layer allows.
//!
//! Consecutive datagrams from one socket to one address with the same size (the last of a run may
//! be shorter) leave as one UDP GSO message (`UDP_SEGMENT`): the kernel walks its stack once for
//! the run and cuts it into datagrams at the end. Up to [`MESSAGES_PER_CALL`] such messages leave
//! in one `sendmmsg(2)`. Where the kernel or the device refuses GSO, the sender falls back, for
//! good, to one datagram per message, still batched by `sendmmsg`.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use rtc::shared::TaggedBytesMut;
use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::udp_transport::UdpTransport;

/// Messages handed to the kernel per `sendmmsg` call.
pub const MESSAGES_PER_CALL: usize = 64;
/// Most datagrams in one GSO message (the kernel's limit is 64 on older kernels).
const MAX_SEGMENTS: usize = 64;
/// Most bytes in one GSO message (IPv4/IPv6 payload limit, with room for the headers).
const MAX_GSO_BYTES: usize = 65_000;
/// How long a full socket buffer is waited on before the rest of the batch is dropped.
const WRITABLE_WAIT: Duration = Duration::from_millis(20);

/// What one flush did (for metrics and benchmarks).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushStats {
    /// Datagrams handed to the kernel.
    pub sent: usize,
    /// Datagrams dropped (send error or a socket that stayed full).
    pub dropped: usize,
    /// `sendmmsg` calls made.
    pub calls: usize,
}

/// One message: `count` datagrams of `queue[start..]`, same socket and destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Message {
    start: usize,
    count: usize,
    /// Segment size when `count > 1` (every datagram but the last has exactly this length).
    segment: usize,
}

/// Batches sends with `sendmmsg`, and with UDP GSO where the kernel takes it.
pub struct BatchSender {
    gso: bool,
}

impl BatchSender {
    /// A sender that tries GSO if this kernel knows `UDP_SEGMENT`.
    pub fn new(transport: &UdpTransport) -> BatchSender {
        let gso = transport.sockets().next().is_some_and(kernel_knows_gso);
        BatchSender { gso }
    }

    /// True while GSO is in use.
    pub fn uses_gso(&self) -> bool {
        self.gso
    }

    /// Sends every datagram of `queue` (in order per destination) and empties it.
    pub async fn flush(
        &mut self,
        transport: &UdpTransport,
        queue: &mut Vec<TaggedBytesMut>,
    ) -> FlushStats {
        let mut stats = FlushStats::default();
        let mut messages = Vec::new();
        let mut at = 0;
        while at < queue.len() {
            let local = queue[at].transport.local_addr;
            let Some(socket) = transport.socket_for(local) else {
                at += 1;
                stats.dropped += 1;
                continue;
            };
            // The run of datagrams leaving from this socket.
            let end = queue[at..]
                .iter()
                .position(|d| d.transport.local_addr != local)
                .map_or(queue.len(), |n| at + n);
            messages.clear();
            plan_messages(&queue[at..end], at, self.gso, &mut messages);
            self.send_messages(socket, queue, &mut messages, &mut stats)
                .await;
            at = end;
        }
        queue.clear();
        stats
    }

    async fn send_messages(
        &mut self,
        socket: &UdpSocket,
        queue: &[TaggedBytesMut],
        messages: &mut Vec<Message>,
        stats: &mut FlushStats,
    ) {
        let mut next = 0;
        while next < messages.len() {
            let chunk = &messages[next..messages.len().min(next + MESSAGES_PER_CALL)];
            let mut called = false;
            let result = socket.try_io(Interest::WRITABLE, || {
                called = true;
                send_mmsg(socket, queue, chunk)
            });
            stats.calls += usize::from(called);
            match result {
                Ok(sent) => {
                    stats.sent += chunk[..sent].iter().map(|m| m.count).sum::<usize>();
                    next += sent.max(1);
                    if sent == 0 {
                        stats.dropped += chunk[0].count;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let writable = tokio::time::timeout(WRITABLE_WAIT, socket.writable()).await;
                    if !matches!(writable, Ok(Ok(()))) {
                        let rest: usize = messages[next..].iter().map(|m| m.count).sum();
                        tracing::debug!(datagrams = rest, "media socket stayed full: dropped");
                        stats.dropped += rest;
                        return;
                    }
                }
                Err(e) if self.gso && chunk[0].count > 1 && refuses_gso(&e) => {
                    tracing::info!(error = %e, "UDP GSO refused here: one datagram per message from now on");
                    self.gso = false;
                    let mut single = Vec::with_capacity(messages.len());
                    for message in &messages[next..] {
                        single.extend((0..message.count).map(|i| Message {
                            start: message.start + i,
                            count: 1,
                            segment: 0,
                        }));
                    }
                    *messages = single;
                    next = 0;
                }
                Err(e) => {
                    // The first message of the chunk failed (unreachable address and the like):
                    // drop it, go on with the rest.
                    tracing::debug!(error = %e, "UDP send failed");
                    stats.dropped += chunk[0].count;
                    next += 1;
                }
            }
        }
    }
}

/// Splits `datagrams` (all from one socket; `queue[offset..]`) into messages: with `gso`, runs of
/// same-sized datagrams to one destination, else one datagram each.
fn plan_messages(datagrams: &[TaggedBytesMut], offset: usize, gso: bool, out: &mut Vec<Message>) {
    let mut i = 0;
    while i < datagrams.len() {
        let first = &datagrams[i];
        let segment = first.message.len();
        let mut count = 1;
        let mut bytes = segment;
        if gso {
            while i + count < datagrams.len() && count < MAX_SEGMENTS {
                let next = &datagrams[i + count];
                let len = next.message.len();
                if next.transport.peer_addr != first.transport.peer_addr
                    || len > segment
                    || len == 0
                    || bytes + len > MAX_GSO_BYTES
                {
                    break;
                }
                count += 1;
                bytes += len;
                if len < segment {
                    break; // a shorter datagram ends a run
                }
            }
        }
        out.push(Message {
            start: offset + i,
            count,
            segment,
        });
        i += count;
    }
}

/// One `sendmmsg` of `messages`; returns how many messages the kernel took.
fn send_mmsg(
    socket: &UdpSocket,
    queue: &[TaggedBytesMut],
    messages: &[Message],
) -> io::Result<usize> {
    let datagrams: usize = messages.iter().map(|m| m.count).sum();
    let mut iovecs: Vec<libc::iovec> = Vec::with_capacity(datagrams);
    let mut addresses: Vec<(libc::sockaddr_storage, libc::socklen_t)> =
        Vec::with_capacity(messages.len());
    // CMSG_SPACE(sizeof(u16)) is 24 bytes on 64-bit Linux: room for one cmsg per message.
    let mut controls: Vec<[u64; 4]> = vec![[0; 4]; messages.len()];
    for message in messages {
        for datagram in &queue[message.start..message.start + message.count] {
            iovecs.push(libc::iovec {
                iov_base: datagram.message.as_ptr() as *mut libc::c_void,
                iov_len: datagram.message.len(),
            });
        }
        addresses.push(socket_address(queue[message.start].transport.peer_addr));
    }
    let mut headers: Vec<libc::mmsghdr> = Vec::with_capacity(messages.len());
    let mut iov_at = 0;
    for (i, message) in messages.iter().enumerate() {
        // SAFETY: an all-zero msghdr is a valid empty header; every pointer set below points into
        // vectors that outlive the sendmmsg call and are not moved meanwhile.
        let mut header: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
        header.msg_name = &mut addresses[i].0 as *mut libc::sockaddr_storage as *mut libc::c_void;
        header.msg_namelen = addresses[i].1;
        header.msg_iov = iovecs[iov_at..].as_mut_ptr();
        header.msg_iovlen = message.count as _;
        iov_at += message.count;
        if message.count > 1 {
            let control = &mut controls[i];
            header.msg_control = control.as_mut_ptr() as *mut libc::c_void;
            // SAFETY: CMSG_SPACE and CMSG_LEN are pure size computations.
            header.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as _;
            // SAFETY: msg_control points at 32 zeroed, 8-aligned bytes, more than CMSG_SPACE(2);
            // CMSG_FIRSTHDR therefore returns a pointer inside it, and the u16 written at
            // CMSG_DATA lies within CMSG_LEN(2) of it.
            unsafe {
                let cmsg = libc::CMSG_FIRSTHDR(&header);
                (*cmsg).cmsg_level = libc::SOL_UDP;
                (*cmsg).cmsg_type = libc::UDP_SEGMENT;
                (*cmsg).cmsg_len = libc::CMSG_LEN(2) as _;
                std::ptr::write_unaligned(
                    libc::CMSG_DATA(cmsg) as *mut u16,
                    message.segment as u16,
                );
            }
        }
        headers.push(libc::mmsghdr {
            msg_hdr: header,
            msg_len: 0,
        });
    }
    // SAFETY: `headers` holds `headers.len()` initialised mmsghdr whose buffers (iovecs,
    // addresses, controls, the datagrams in `queue`) are alive and unmoved for the call.
    let sent = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            headers.as_mut_ptr(),
            headers.len() as _,
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

fn socket_address(address: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { MaybeUninit::zeroed().assume_init() };
    let len = match address {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe {
                std::ptr::write(
                    &mut storage as *mut libc::sockaddr_storage as *mut libc::sockaddr_in,
                    sin,
                )
            };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe {
                std::ptr::write(
                    &mut storage as *mut libc::sockaddr_storage as *mut libc::sockaddr_in6,
                    sin6,
                )
            };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// True when the kernel knows the `UDP_SEGMENT` socket option (Linux ≥ 4.18).
fn kernel_knows_gso(socket: &UdpSocket) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are valid for writes of the sizes given.
    let result = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            &mut value as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    result == 0
}

/// Errors by which a kernel or device says it cannot segment (no checksum offload, and the like).
fn refuses_gso(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EIO) | Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) | Some(libc::ENOPROTOOPT)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use rtc::shared::{TransportContext, TransportProtocol};
    use std::time::Instant;

    fn datagram(to: u16, len: usize) -> TaggedBytesMut {
        TaggedBytesMut {
            now: Instant::now(),
            transport: TransportContext {
                local_addr: "127.0.0.1:1".parse().unwrap(),
                peer_addr: SocketAddr::from(([127, 0, 0, 1], to)),
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(&vec![to as u8; len][..]),
        }
    }

    fn plan(datagrams: &[TaggedBytesMut], gso: bool) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        plan_messages(datagrams, 0, gso, &mut out);
        out.iter().map(|m| (m.start, m.count, m.segment)).collect()
    }

    #[test]
    fn runs_of_equal_size_to_one_address_become_one_message() {
        let queue = [
            datagram(1, 1200),
            datagram(1, 1200),
            datagram(1, 700), // shorter: ends the run
            datagram(1, 1200),
            datagram(2, 1200), // other address
            datagram(2, 1300), // longer: cannot join
        ];
        assert_eq!(
            plan(&queue, true),
            vec![(0, 3, 1200), (3, 1, 1200), (4, 1, 1200), (5, 1, 1300)]
        );
        assert_eq!(
            plan(&queue, false).len(),
            6,
            "without GSO, one datagram each"
        );
    }

    #[test]
    fn a_run_stops_at_the_segment_and_byte_limits() {
        let queue: Vec<_> = (0..150).map(|_| datagram(1, 1000)).collect();
        let counts: Vec<usize> = plan(&queue, true).iter().map(|m| m.1).collect();
        assert_eq!(counts, vec![64, 64, 22]);
        let big: Vec<_> = (0..60).map(|_| datagram(1, 1400)).collect();
        let counts: Vec<usize> = plan(&big, true).iter().map(|m| m.1).collect();
        assert_eq!(
            counts,
            vec![46, 14],
            "46 × 1400 fits in {MAX_GSO_BYTES} bytes"
        );
    }

    #[tokio::test]
    async fn every_datagram_arrives_whole_and_in_order() {
        let transport = UdpTransport::bind(
            "127.0.0.1:0".parse().unwrap(),
            prometheus::IntCounter::new("t", "t").unwrap(),
        )
        .await
        .unwrap();
        let local = transport.local_addrs()[0];
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let to = receiver.local_addr().unwrap();
        let sizes = [1200, 1200, 1200, 500, 1200, 90, 1200, 1200];
        let mut queue: Vec<TaggedBytesMut> = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let mut d = datagram(0, len);
                d.transport.local_addr = local;
                d.transport.peer_addr = to;
                d.message.fill(i as u8);
                d
            })
            .collect();
        let mut sender = BatchSender::new(&transport);
        let stats = sender.flush(&transport, &mut queue).await;
        assert!(queue.is_empty());
        assert_eq!(stats.sent, sizes.len(), "{stats:?}");
        assert_eq!(stats.dropped, 0);
        if sender.uses_gso() {
            assert_eq!(
                stats.calls, 1,
                "one sendmmsg for the whole batch: {stats:?}"
            );
        }
        let mut buffer = [0u8; 2048];
        for (i, &len) in sizes.iter().enumerate() {
            let (n, _) = receiver.recv_from(&mut buffer).unwrap();
            assert_eq!(n, len, "datagram {i}");
            assert!(buffer[..n].iter().all(|&b| b == i as u8), "datagram {i}");
        }
    }
}
