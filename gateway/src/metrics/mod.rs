//! Prometheus metrics: one registry, the `straja_` families, and per-camera handles resolved once
//! so the media path only increments atomics (no label lookup per packet).
//!
//! Labels are bounded: `camera` (ids from the config), `kind`, `route` (route templates), `code`,
//! `reason` and `outcome` (fixed sets). Never a session id, an address or a user. The catalogue
//! of every family is `gateway/observability/METRICS.md`.
//!
//! - [`relay_latency`]: the hub-to-socket histogram the egress shards feed;
//! - [`viewer_quality`]: what viewers get (RTCP receiver reports, NACKs, keyframes, first frame).

pub mod relay_latency;
pub mod viewer_quality;

use std::sync::Arc;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use relay_latency::RelayLatency;
use viewer_quality::{ViewerQuality, ViewerQualityFamilies};

/// The `reason` values of `straja_pipeline_errors_total`, in the order of
/// [`straja_pipelines::FailureKind::ALL`].
pub const PIPELINE_ERROR_REASONS: [&str; 6] = straja_pipelines::FailureKind::NAMES;

/// The `reason` values of `straja_tls_handshake_failures_total`.
pub const TLS_HANDSHAKE_FAILURE_REASONS: [&str; 5] = [
    "client_certificate",
    "protocol",
    "timeout",
    "closed",
    "other",
];

/// The metric families of the gateway.
pub struct Metrics {
    registry: Registry,
    /// `straja_camera_up{camera}`: 1 when the camera's pipeline is delivering packets.
    pub camera_up: IntGaugeVec,
    /// `straja_ingest_packets_total{camera}`.
    pub ingest_packets: IntCounterVec,
    /// `straja_ingest_bytes_total{camera}`.
    pub ingest_bytes: IntCounterVec,
    /// `straja_camera_reconnects_total{camera}`.
    pub camera_reconnects: IntCounterVec,
    /// `straja_webrtc_sessions{kind}`: sessions open now.
    pub webrtc_sessions: IntGaugeVec,
    /// `straja_egress_packets_total{camera}`: RTP packets sent to viewers.
    pub egress_packets: IntCounterVec,
    /// `straja_egress_bytes_total{camera}`: RTP payload and header bytes sent to viewers (before SRTP).
    pub egress_bytes: IntCounterVec,
    /// `straja_egress_dropped_packets_total{camera}`: packets a slow viewer's queue had no room for.
    pub egress_dropped: IntCounterVec,
    /// `straja_keyframe_requests_total{camera}`: keyframe requests sent upstream.
    pub keyframe_requests: IntCounterVec,
    /// `straja_gop_cache_bytes{camera}`: bytes of the camera's current GOP held for new viewers.
    pub gop_cache_bytes: IntGaugeVec,
    /// `straja_gop_cache_replays_total{camera}`: viewers started from the cached GOP.
    pub gop_cache_replays: IntCounterVec,
    /// `straja_http_requests_total{route,code}`.
    pub http_requests: IntCounterVec,
    /// `straja_whep_answer_seconds`: time from a WHEP offer's arrival to its answer.
    pub whep_answer_seconds: Histogram,
    /// `straja_webrtc_udp_unmatched_datagrams_total`: datagrams no session claimed.
    pub udp_unmatched: IntCounter,
    /// `straja_logins_total{outcome}`: password logins by outcome (`success`, `failure`,
    /// `throttled`).
    pub logins: IntCounterVec,
    /// `straja_auth_failures_total{reason}`: requests refused by authentication or authorization
    /// (`missing`, `invalid`, `expired`, `signed_out`, `forbidden`, `csrf`).
    pub auth_failures: IntCounterVec,
    /// `straja_signed_in_users`: sign-ins held now (login page).
    pub signed_in: IntGauge,
    /// `straja_recording_up{camera}`: 1 while the camera's recorder writes a segment.
    pub recording_up: IntGaugeVec,
    /// `straja_recording_segments_total{camera}`: segments finished.
    pub recording_segments: IntCounterVec,
    /// `straja_recording_written_bytes_total{camera}`: encrypted MP4 bytes written (plaintext size).
    pub recording_written_bytes: IntCounterVec,
    /// `straja_recording_dropped_packets_total{camera}`: packets the recorder's queue had no room for.
    pub recording_dropped: IntCounterVec,
    /// `straja_recording_failures_total{camera,reason}`: recording stops (`disk_full`,
    /// `write_error`, `muxer_error`).
    pub recording_failures: IntCounterVec,
    /// `straja_recording_deleted_segments_total{camera,reason}`: segments deleted by retention
    /// (`age`, `size`).
    pub recording_deleted: IntCounterVec,
    /// `straja_recording_stored_bytes{camera}`: bytes of the camera's segments on disk.
    pub recording_stored_bytes: IntGaugeVec,
    /// `straja_recording_disk_free_bytes`: free space on the recordings' filesystem.
    pub recording_disk_free_bytes: IntGauge,
    /// `straja_transcoders_running{camera}`: 1 while the camera's H.265 → H.264 transcoder runs.
    pub transcoders_running: IntGaugeVec,
    /// `straja_snapshots_total{camera,outcome}`: snapshot requests by outcome (`served`,
    /// `cached`, `unavailable`, `failed`).
    pub snapshots: IntCounterVec,
    /// `straja_config_reloads_total{outcome}`: configuration reloads (SIGHUP), `applied` or
    /// `rejected` (invalid: the configuration in force stayed).
    pub config_reloads: IntCounterVec,
    /// `straja_config_last_reload_successful`: 0 after a rejected reload, until one is applied.
    pub config_last_reload_successful: IntGauge,
    /// `straja_relay_latency_seconds`: hub arrival to socket send, per copy.
    pub relay_latency: Arc<RelayLatency>,
    /// What viewers get, per camera and kind.
    pub viewer_quality: ViewerQualityFamilies,
    /// `straja_camera_frame_rate{camera}`: frames per second from the camera, over the last
    /// second or so.
    pub camera_frame_rate: GaugeVec,
    /// `straja_camera_keyframe_interval_seconds{camera}`: time between its last two keyframes.
    pub camera_keyframe_interval: GaugeVec,
    /// `straja_pipeline_errors_total{camera,reason}`: pipeline failures (each one reconnects), by
    /// [`PIPELINE_ERROR_REASONS`].
    pub pipeline_errors: IntCounterVec,
    /// `straja_tls_handshake_failures_total{reason}`: HTTPS connections whose TLS handshake
    /// failed, by [`TLS_HANDSHAKE_FAILURE_REASONS`].
    pub tls_handshake_failures: IntCounterVec,
    /// `straja_tls_certificate_expiry_timestamp_seconds`: the served certificate's notAfter.
    pub tls_certificate_expiry: Gauge,
    /// `straja_audit_write_seconds`: appending one audit record, until it is on disk.
    pub audit_write_seconds: Histogram,
    /// `straja_audit_write_failures_total`: audit records that could not be written.
    pub audit_write_failures: IntCounter,
    /// `straja_consultations`: consultations running now.
    pub consultations: IntGauge,
    /// `straja_consultation_participants`: participants connected to a consultation now.
    pub consultation_participants: IntGauge,
    /// `straja_consultation_join_seconds`: from a participant entering the call to their first
    /// subscription answered.
    pub consultation_join_seconds: Histogram,
    /// `straja_consultation_recordings`: consultations being recorded now.
    pub consultation_recordings: IntGauge,
}

impl Metrics {
    /// Creates and registers every family.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let build_info = IntGaugeVec::new(
            Opts::new("straja_build_info", "Build information; always 1."),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let metrics = Metrics {
            camera_up: IntGaugeVec::new(
                Opts::new(
                    "straja_camera_up",
                    "1 when the camera's ingest pipeline is playing, else 0.",
                ),
                &["camera"],
            )
            .expect("valid metric"),
            ingest_packets: counter(
                "straja_ingest_packets_total",
                "RTP packets received from the camera's pipeline.",
                &["camera"],
            ),
            ingest_bytes: counter(
                "straja_ingest_bytes_total",
                "RTP bytes received from the camera's pipeline.",
                &["camera"],
            ),
            camera_reconnects: counter(
                "straja_camera_reconnects_total",
                "Times the camera's pipeline was rebuilt after a failure.",
                &["camera"],
            ),
            webrtc_sessions: IntGaugeVec::new(
                Opts::new("straja_webrtc_sessions", "WebRTC sessions open now."),
                &["kind"],
            )
            .expect("valid metric"),
            egress_packets: counter(
                "straja_egress_packets_total",
                "RTP packets sent to viewers.",
                &["camera"],
            ),
            egress_bytes: counter(
                "straja_egress_bytes_total",
                "RTP bytes sent to viewers, before SRTP.",
                &["camera"],
            ),
            egress_dropped: counter(
                "straja_egress_dropped_packets_total",
                "RTP packets the fan-out dropped because a viewer's or egress shard's queue was full.",
                &["camera"],
            ),
            keyframe_requests: counter(
                "straja_keyframe_requests_total",
                "Keyframe requests sent to the camera's pipeline.",
                &["camera"],
            ),
            gop_cache_bytes: IntGaugeVec::new(
                Opts::new(
                    "straja_gop_cache_bytes",
                    "Bytes of the camera's current GOP held to start new viewers at once.",
                ),
                &["camera"],
            )
            .expect("valid metric"),
            gop_cache_replays: counter(
                "straja_gop_cache_replays_total",
                "Viewers started from the camera's cached GOP instead of waiting for a keyframe.",
                &["camera"],
            ),
            http_requests: counter(
                "straja_http_requests_total",
                "HTTP requests served, by route template and status code.",
                &["route", "code"],
            ),
            whep_answer_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "straja_whep_answer_seconds",
                    "Time from a WHEP offer's arrival to its SDP answer.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                ]),
            )
            .expect("valid metric"),
            udp_unmatched: IntCounter::new(
                "straja_webrtc_udp_unmatched_datagrams_total",
                "UDP datagrams on the media port that no session claimed.",
            )
            .expect("valid metric"),
            logins: counter(
                "straja_logins_total",
                "Password logins on the login page, by outcome (success, failure, throttled).",
                &["outcome"],
            ),
            auth_failures: counter(
                "straja_auth_failures_total",
                "Requests refused by authentication or authorization, by reason.",
                &["reason"],
            ),
            signed_in: IntGauge::new(
                "straja_signed_in_users",
                "Sign-ins from the login page held now.",
            )
            .expect("valid metric"),
            recording_up: IntGaugeVec::new(
                Opts::new(
                    "straja_recording_up",
                    "1 while the camera's recorder is writing a segment (0: off, waiting, disk full, failed).",
                ),
                &["camera"],
            )
            .expect("valid metric"),
            recording_segments: counter(
                "straja_recording_segments_total",
                "Recorded segments finished.",
                &["camera"],
            ),
            recording_written_bytes: counter(
                "straja_recording_written_bytes_total",
                "MP4 bytes written to the camera's encrypted segments.",
                &["camera"],
            ),
            recording_dropped: counter(
                "straja_recording_dropped_packets_total",
                "RTP packets the recorder's queue had no room for (the disk is not keeping up).",
                &["camera"],
            ),
            recording_failures: counter(
                "straja_recording_failures_total",
                "Times recording stopped, by reason (disk_full, write_error, muxer_error).",
                &["camera", "reason"],
            ),
            recording_deleted: counter(
                "straja_recording_deleted_segments_total",
                "Segments deleted by retention, by reason (age, size).",
                &["camera", "reason"],
            ),
            recording_stored_bytes: IntGaugeVec::new(
                Opts::new(
                    "straja_recording_stored_bytes",
                    "Bytes of the camera's recorded segments on disk.",
                ),
                &["camera"],
            )
            .expect("valid metric"),
            recording_disk_free_bytes: IntGauge::new(
                "straja_recording_disk_free_bytes",
                "Free bytes on the filesystem that holds the recordings.",
            )
            .expect("valid metric"),
            transcoders_running: IntGaugeVec::new(
                Opts::new(
                    "straja_transcoders_running",
                    "1 while the camera's H.265 to H.264 transcoder runs (for viewers without H.265).",
                ),
                &["camera"],
            )
            .expect("valid metric"),
            snapshots: counter(
                "straja_snapshots_total",
                "Snapshot requests, by outcome: served (decoded), cached (the same keyframe's \
                 JPEG again), unavailable (no live keyframe), failed (could not decode).",
                &["camera", "outcome"],
            ),
            config_reloads: counter(
                "straja_config_reloads_total",
                "Configuration reloads (SIGHUP), by outcome: applied, or rejected (invalid, so \
                 the configuration in force stayed).",
                &["outcome"],
            ),
            config_last_reload_successful: IntGauge::new(
                "straja_config_last_reload_successful",
                "0 after a configuration reload was rejected, until one is applied; else 1.",
            )
            .expect("valid metric"),
            relay_latency: Arc::new(RelayLatency::new()),
            viewer_quality: ViewerQualityFamilies::new(),
            camera_frame_rate: GaugeVec::new(
                Opts::new(
                    "straja_camera_frame_rate",
                    "Frames per second the camera delivers, over the last second or so.",
                ),
                &["camera"],
            )
            .expect("valid metric"),
            camera_keyframe_interval: GaugeVec::new(
                Opts::new(
                    "straja_camera_keyframe_interval_seconds",
                    "Time between the camera's last two keyframes.",
                ),
                &["camera"],
            )
            .expect("valid metric"),
            pipeline_errors: counter(
                "straja_pipeline_errors_total",
                "Camera pipeline failures (each is followed by a reconnect), by reason: connect, \
                 auth, not_found, stall, stream, other.",
                &["camera", "reason"],
            ),
            tls_handshake_failures: counter(
                "straja_tls_handshake_failures_total",
                "HTTPS connections whose TLS handshake failed, by reason: client_certificate, \
                 protocol, timeout, closed, other.",
                &["reason"],
            ),
            tls_certificate_expiry: Gauge::new(
                "straja_tls_certificate_expiry_timestamp_seconds",
                "When the HTTPS certificate in force expires (its notAfter), in Unix seconds.",
            )
            .expect("valid metric"),
            audit_write_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "straja_audit_write_seconds",
                    "Time to append one audit record until it is on disk (fsync).",
                )
                .buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
                ]),
            )
            .expect("valid metric"),
            audit_write_failures: IntCounter::new(
                "straja_audit_write_failures_total",
                "Audit records that could not be written (the action they record was refused).",
            )
            .expect("valid metric"),
            consultations: IntGauge::new(
                "straja_consultations",
                "Telemedicine consultations running now.",
            )
            .expect("valid metric"),
            consultation_recordings: IntGauge::new(
                "straja_consultation_recordings",
                "Consultations being recorded now (everyone consented, the clinician started it).",
            )
            .expect("valid metric"),
            consultation_participants: IntGauge::new(
                "straja_consultation_participants",
                "Participants connected to a consultation now (the clinician included).",
            )
            .expect("valid metric"),
            consultation_join_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "straja_consultation_join_seconds",
                    "Time from a participant entering a consultation's call (admitted; the \
                     clinician: connected) to their first subscription to another participant \
                     answered.",
                )
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            )
            .expect("valid metric"),
            registry,
        };
        let families: [Box<dyn prometheus::core::Collector>; 30] = [
            Box::new(build_info),
            Box::new(metrics.camera_up.clone()),
            Box::new(metrics.ingest_packets.clone()),
            Box::new(metrics.ingest_bytes.clone()),
            Box::new(metrics.camera_reconnects.clone()),
            Box::new(metrics.webrtc_sessions.clone()),
            Box::new(metrics.egress_packets.clone()),
            Box::new(metrics.egress_bytes.clone()),
            Box::new(metrics.egress_dropped.clone()),
            Box::new(metrics.keyframe_requests.clone()),
            Box::new(metrics.gop_cache_bytes.clone()),
            Box::new(metrics.gop_cache_replays.clone()),
            Box::new(metrics.http_requests.clone()),
            Box::new(metrics.whep_answer_seconds.clone()),
            Box::new(metrics.udp_unmatched.clone()),
            Box::new(metrics.logins.clone()),
            Box::new(metrics.auth_failures.clone()),
            Box::new(metrics.signed_in.clone()),
            Box::new(metrics.recording_up.clone()),
            Box::new(metrics.recording_segments.clone()),
            Box::new(metrics.recording_written_bytes.clone()),
            Box::new(metrics.recording_dropped.clone()),
            Box::new(metrics.recording_failures.clone()),
            Box::new(metrics.recording_deleted.clone()),
            Box::new(metrics.recording_stored_bytes.clone()),
            Box::new(metrics.recording_disk_free_bytes.clone()),
            Box::new(metrics.snapshots.clone()),
            Box::new(metrics.transcoders_running.clone()),
            Box::new(metrics.config_reloads.clone()),
            Box::new(metrics.config_last_reload_successful.clone()),
        ];
        let more: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(ArcCollector(metrics.relay_latency.clone())),
            Box::new(metrics.camera_frame_rate.clone()),
            Box::new(metrics.camera_keyframe_interval.clone()),
            Box::new(metrics.pipeline_errors.clone()),
            Box::new(metrics.tls_handshake_failures.clone()),
            Box::new(metrics.tls_certificate_expiry.clone()),
            Box::new(metrics.audit_write_seconds.clone()),
            Box::new(metrics.audit_write_failures.clone()),
            Box::new(metrics.consultations.clone()),
            Box::new(metrics.consultation_participants.clone()),
            Box::new(metrics.consultation_join_seconds.clone()),
            Box::new(metrics.consultation_recordings.clone()),
            // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, ...
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ];
        for family in families
            .into_iter()
            .chain(more)
            .chain(metrics.viewer_quality.collectors())
        {
            metrics
                .registry
                .register(family)
                .expect("metric names are unique");
        }
        for reason in TLS_HANDSHAKE_FAILURE_REASONS {
            metrics.tls_handshake_failures.with_label_values(&[reason]);
        }
        // Sessions of every kind are exported from the start, at 0.
        metrics.webrtc_sessions.with_label_values(&["whep"]).set(0);
        for outcome in ["applied", "rejected"] {
            metrics.config_reloads.with_label_values(&[outcome]);
        }
        metrics.config_last_reload_successful.set(1);
        for outcome in ["success", "failure", "throttled"] {
            metrics.logins.with_label_values(&[outcome]);
        }
        for reason in [
            "missing",
            "invalid",
            "expired",
            "signed_out",
            "forbidden",
            "csrf",
        ] {
            metrics.auth_failures.with_label_values(&[reason]);
        }
        metrics
    }

    /// Handles for one camera's series, created (at 0) so the camera is visible before traffic.
    pub fn camera(&self, camera: &str) -> CameraMetrics {
        let l = &[camera];
        CameraMetrics {
            up: self.camera_up.with_label_values(l),
            ingest_packets: self.ingest_packets.with_label_values(l),
            ingest_bytes: self.ingest_bytes.with_label_values(l),
            reconnects: self.camera_reconnects.with_label_values(l),
            egress_packets: self.egress_packets.with_label_values(l),
            egress_bytes: self.egress_bytes.with_label_values(l),
            egress_dropped: self.egress_dropped.with_label_values(l),
            keyframe_requests: self.keyframe_requests.with_label_values(l),
            gop_cache_bytes: self.gop_cache_bytes.with_label_values(l),
            gop_cache_replays: self.gop_cache_replays.with_label_values(l),
            quality: self.viewer_quality.camera(camera),
            frame_rate: self.camera_frame_rate.with_label_values(l),
            keyframe_interval: self.camera_keyframe_interval.with_label_values(l),
            pipeline_errors: PIPELINE_ERROR_REASONS
                .map(|reason| self.pipeline_errors.with_label_values(&[camera, reason])),
        }
    }

    /// Removes a camera's live series (a camera removed by a reload), so that dashboards and
    /// alerts stop seeing it. Its recordings' series (`straja_recording_stored_bytes`,
    /// `straja_recording_deleted_segments_total`) stay while its segments are on disk.
    pub fn forget_camera(&self, camera: &str) {
        let l = &[camera];
        let _ = self.camera_up.remove_label_values(l);
        for family in [
            &self.ingest_packets,
            &self.ingest_bytes,
            &self.camera_reconnects,
            &self.egress_packets,
            &self.egress_bytes,
            &self.egress_dropped,
            &self.keyframe_requests,
            &self.gop_cache_replays,
            &self.recording_segments,
            &self.recording_written_bytes,
            &self.recording_dropped,
        ] {
            let _ = family.remove_label_values(l);
        }
        for family in [
            &self.gop_cache_bytes,
            &self.recording_up,
            &self.transcoders_running,
        ] {
            let _ = family.remove_label_values(l);
        }
        for reason in ["disk_full", "write_error", "muxer_error"] {
            let _ = self
                .recording_failures
                .remove_label_values(&[camera, reason]);
        }
        for outcome in crate::snapshots::SnapshotOutcome::ALL {
            let _ = self
                .snapshots
                .remove_label_values(&[camera, outcome.as_str()]);
        }
        self.viewer_quality.forget(camera);
        let _ = self.camera_frame_rate.remove_label_values(l);
        let _ = self.camera_keyframe_interval.remove_label_values(l);
        for reason in PIPELINE_ERROR_REASONS {
            let _ = self.pipeline_errors.remove_label_values(&[camera, reason]);
        }
    }

    /// Removes a camera's recorder series (its recording turned off by a reload), so that
    /// `straja_recording_up` does not read as a stopped recorder.
    pub fn forget_recording(&self, camera: &str) {
        let l = &[camera];
        let _ = self.recording_up.remove_label_values(l);
        for family in [
            &self.recording_segments,
            &self.recording_written_bytes,
            &self.recording_dropped,
        ] {
            let _ = family.remove_label_values(l);
        }
        for reason in ["disk_full", "write_error", "muxer_error"] {
            let _ = self
                .recording_failures
                .remove_label_values(&[camera, reason]);
        }
    }

    /// Handles for a consultation participant's feeds: their packets and their viewers' quality
    /// count under `camera="consultation"` (one bounded label for every consultation: never a
    /// participant or consultation id); the camera-only series (up, frame rate, pipeline errors)
    /// are not exported for them.
    pub fn consultation_media(&self) -> CameraMetrics {
        const LABEL: &str = "consultation";
        let l = &[LABEL];
        let detached_gauge = || IntGauge::new("detached", "not exported").expect("valid metric");
        let detached_counter =
            || IntCounter::new("detached", "not exported").expect("valid metric");
        let detached_float = || Gauge::new("detached", "not exported").expect("valid metric");
        CameraMetrics {
            up: detached_gauge(),
            ingest_packets: self.ingest_packets.with_label_values(l),
            ingest_bytes: self.ingest_bytes.with_label_values(l),
            reconnects: detached_counter(),
            egress_packets: self.egress_packets.with_label_values(l),
            egress_bytes: self.egress_bytes.with_label_values(l),
            egress_dropped: self.egress_dropped.with_label_values(l),
            keyframe_requests: self.keyframe_requests.with_label_values(l),
            gop_cache_bytes: detached_gauge(),
            gop_cache_replays: self.gop_cache_replays.with_label_values(l),
            quality: self.viewer_quality.camera(LABEL),
            frame_rate: detached_float(),
            keyframe_interval: detached_float(),
            pipeline_errors: std::array::from_fn(|_| detached_counter()),
        }
    }

    /// Handles for one recorded camera's series, created (at 0) so they show before any failure.
    pub fn recording(&self, camera: &str) -> RecordingMetrics {
        let l = &[camera];
        for reason in ["disk_full", "write_error", "muxer_error"] {
            self.recording_failures.with_label_values(&[camera, reason]);
        }
        RecordingMetrics {
            label: camera.to_owned(),
            up: self.recording_up.with_label_values(l),
            segments: self.recording_segments.with_label_values(l),
            bytes_written: self.recording_written_bytes.with_label_values(l),
            dropped_packets: self.recording_dropped.with_label_values(l),
            failures: self.recording_failures.clone(),
            disk_free_bytes: self.recording_disk_free_bytes.clone(),
        }
    }

    /// The series every consultation track's recorder counts in: `camera="consultation"` (one
    /// label for all, never a consultation's or participant's id). Its `up` is not exported (many
    /// recorders share the label; `straja_consultation_recordings` says what runs).
    pub fn consultation_recording(&self) -> RecordingMetrics {
        let mut metrics = self.recording("consultation");
        let _ = self.recording_up.remove_label_values(&["consultation"]);
        metrics.up = IntGauge::new("detached", "not exported").expect("valid metric");
        metrics
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// One camera's series, resolved once.
#[derive(Clone)]
pub struct CameraMetrics {
    /// `straja_camera_up{camera}`.
    pub up: IntGauge,
    /// `straja_ingest_packets_total{camera}`.
    pub ingest_packets: IntCounter,
    /// `straja_ingest_bytes_total{camera}`.
    pub ingest_bytes: IntCounter,
    /// `straja_camera_reconnects_total{camera}`.
    pub reconnects: IntCounter,
    /// `straja_egress_packets_total{camera}`.
    pub egress_packets: IntCounter,
    /// `straja_egress_bytes_total{camera}`.
    pub egress_bytes: IntCounter,
    /// `straja_egress_dropped_packets_total{camera}`.
    pub egress_dropped: IntCounter,
    /// `straja_keyframe_requests_total{camera}`.
    pub keyframe_requests: IntCounter,
    /// `straja_gop_cache_bytes{camera}`.
    pub gop_cache_bytes: IntGauge,
    /// `straja_gop_cache_replays_total{camera}`.
    pub gop_cache_replays: IntCounter,
    /// What its viewers get.
    pub quality: ViewerQuality,
    /// `straja_camera_frame_rate{camera}`.
    pub frame_rate: Gauge,
    /// `straja_camera_keyframe_interval_seconds{camera}`.
    pub keyframe_interval: Gauge,
    /// `straja_pipeline_errors_total{camera,reason}`, by [`PIPELINE_ERROR_REASONS`].
    pub pipeline_errors: [IntCounter; 6],
}

/// Registers a collector shared with the code that feeds it.
struct ArcCollector<T>(Arc<T>);

impl<T: prometheus::core::Collector> prometheus::core::Collector for ArcCollector<T> {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.0.collect()
    }
}

/// One recorded camera's series, resolved once.
#[derive(Clone)]
pub struct RecordingMetrics {
    /// The `camera` label of its series.
    pub label: String,
    /// `straja_recording_up{camera}`.
    pub up: IntGauge,
    /// `straja_recording_segments_total{camera}`.
    pub segments: IntCounter,
    /// `straja_recording_written_bytes_total{camera}`.
    pub bytes_written: IntCounter,
    /// `straja_recording_dropped_packets_total{camera}`.
    pub dropped_packets: IntCounter,
    /// `straja_recording_failures_total{camera,reason}` (the family: the reason is set per failure).
    pub failures: IntCounterVec,
    /// `straja_recording_disk_free_bytes`.
    pub disk_free_bytes: IntGauge,
}

impl RecordingMetrics {
    /// Counts a recording stop for `reason` (`disk_full`, `write_error`, `muxer_error`).
    pub fn count_failure(&self, reason: &str) {
        self.failures
            .with_label_values(&[&self.label, reason])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_required_family_is_exported_before_traffic() {
        let metrics = Metrics::new();
        let _ = metrics.camera("north-gate");
        metrics.whep_answer_seconds.observe(0.01);
        metrics
            .http_requests
            .with_label_values(&["/healthz", "200"])
            .inc();
        let text = metrics.render();
        for family in [
            "straja_build_info",
            "straja_camera_up{camera=\"north-gate\"}",
            "straja_ingest_packets_total{camera=\"north-gate\"}",
            "straja_ingest_bytes_total",
            "straja_webrtc_sessions{kind=\"whep\"}",
            "straja_egress_packets_total",
            "straja_egress_bytes_total",
            "straja_http_requests_total",
            "straja_whep_answer_seconds_bucket",
        ] {
            assert!(text.contains(family), "{family} missing:\n{text}");
        }
    }
}
