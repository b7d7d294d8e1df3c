//! Delivery from a pipeline's appsink to its [`PacketSink`]: zero-copy, lock-free, counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gstreamer as gst;
use gstreamer_app as gst_app;

use crate::packet_sink::PacketSink;
use crate::video_codec::VideoCodec;

/// Counts what the appsink delivered, for the supervisor's stall detection.
#[derive(Debug)]
pub(crate) struct FlowStats {
    epoch: Instant,
    packets: AtomicU64,
    /// Milliseconds since `epoch` when the last packet came.
    last_packet_ms: AtomicU64,
}

impl FlowStats {
    pub(crate) fn new() -> FlowStats {
        FlowStats {
            epoch: Instant::now(),
            packets: 0.into(),
            last_packet_ms: 0.into(),
        }
    }

    fn record(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_packet_ms.store(ms, Relaxed);
        self.packets.fetch_add(1, Relaxed);
    }

    /// Packets delivered so far.
    pub(crate) fn packets(&self) -> u64 {
        self.packets.load(Relaxed)
    }

    /// When the last packet came, or `None` before the first.
    pub(crate) fn last_packet(&self) -> Option<Instant> {
        if self.packets() == 0 {
            return None;
        }
        let ms = self.last_packet_ms.load(Relaxed);
        Some(self.epoch + Duration::from_millis(ms))
    }
}

/// Like [`connect_sink`] for a camera's video: before the first packet, and whenever the codec in
/// `codec` changes (a camera that came back with another codec), tells `sink` the codec.
pub(crate) fn connect_video_sink(
    appsink: &gst_app::AppSink,
    sink: Arc<dyn PacketSink>,
    stats: Arc<FlowStats>,
    codec: Arc<AtomicU8>,
) {
    let told = AtomicU8::new(0);
    let deliver = move |bytes: Bytes| {
        let current = codec.load(Relaxed);
        if current != told.swap(current, Relaxed)
            && let Some(codec) = VideoCodec::from_u8(current)
        {
            sink.on_video_codec(codec);
        }
        sink.on_packet(bytes);
    };
    connect(appsink, deliver, stats);
}

/// Hands every sample of the appsink to `sink` as [`Bytes`] over the mapped buffer (no copy),
/// counting in `stats`. Runs on the streaming thread; takes no lock.
pub(crate) fn connect_sink(
    appsink: &gst_app::AppSink,
    sink: Arc<dyn PacketSink>,
    stats: Arc<FlowStats>,
) {
    connect(appsink, move |bytes| sink.on_packet(bytes), stats);
}

fn connect(
    appsink: &gst_app::AppSink,
    deliver: impl Fn(Bytes) + Send + Sync + 'static,
    stats: Arc<FlowStats>,
) {
    appsink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |appsink| {
                let sample = appsink
                    .pull_sample()
                    .map_err(|_| gst::FlowError::Flushing)?;
                let Some(buffer) = sample.buffer_owned() else {
                    return Ok(gst::FlowSuccess::Ok);
                };
                drop(sample);
                match buffer.into_mapped_buffer_readable() {
                    Ok(mapped) => {
                        stats.record();
                        deliver(Bytes::from_owner(mapped));
                    }
                    Err(_) => tracing::debug!("an RTP buffer could not be mapped; dropped"),
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
}
