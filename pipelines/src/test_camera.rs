//! A fake IP camera for tests and benches: gstreamer-rtsp-server in-process on 127.0.0.1.
//!
//! It serves one shared media at `/cam`: `videotestsrc ! x264enc tune=zerolatency
//! key-int-max=GOP ! rtph264pay name=pay0 config-interval=-1`, optionally behind Basic or Digest
//! auth, over TLS (RTSPS), on TCP or UDP only, or with parameter sets out of band only. The
//! server runs on its own glib main loop in a thread named `fake-rtsp-camera`.

use std::fmt;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer_rtsp_server as rtsp_server;
use rtsp_server::prelude::*;

use crate::error::PipelineError;

/// How long [`FakeRtspCamera::start`] waits for the server thread to be listening.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// The mount point of the camera's stream.
const MOUNT: &str = "/cam";

/// What the fake camera sends.
#[derive(Clone, PartialEq, Eq)]
pub struct FakeCameraOptions {
    /// Frame width (default 640).
    pub width: u32,
    /// Frame height (default 480).
    pub height: u32,
    /// Frames per second (default 30).
    pub fps: u32,
    /// Frames from one keyframe to the next (default 30).
    pub gop_frames: u32,
    /// Encoder bitrate in kbit/s (default 1000).
    pub bitrate_kbps: u32,
    /// User and password; when set, Basic auth (or Digest, with `digest`) is required.
    pub credentials: Option<(String, String)>,
    /// With `credentials`: ask for Digest auth (RFC 2617) instead of Basic.
    pub digest: bool,
    /// The `videotestsrc` pattern (default `ball`; `snow` does not compress, so the encoder
    /// really sends its bitrate).
    pub pattern: &'static str,
    /// True (default): SPS/PPS before every IDR in the stream. False: only out of band, in the
    /// SDP's `sprop-parameter-sets`, as some cameras send them.
    pub parameter_sets_in_band: bool,
    /// Which RTSP transports the camera accepts (default: TCP and UDP).
    pub transport: FakeCameraTransport,
    /// A PEM certificate chain and its key: serve RTSPS (RTSP over TLS) instead of RTSP.
    pub tls: Option<(String, String)>,
    /// An audio stream (a test tone) besides the video.
    pub audio: Option<FakeCameraAudio>,
    /// Send H.265 (x265) instead of H.264.
    pub h265: bool,
}

/// The audio a fake camera sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeCameraAudio {
    /// Opus, 48 kHz.
    Opus,
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// AAC-LC (RTP MPEG4-GENERIC), as most IP cameras send.
    Aac,
}

impl FakeCameraAudio {
    fn branch(self) -> &'static str {
        match self {
            FakeCameraAudio::Opus => {
                "audio/x-raw,rate=48000,channels=2 ! opusenc ! rtpopuspay name=pay1 pt=97"
            }
            FakeCameraAudio::Pcmu => {
                "audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1 max-ptime=20000000"
            }
            FakeCameraAudio::Pcma => {
                "audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1 max-ptime=20000000"
            }
            FakeCameraAudio::Aac => {
                "audio/x-raw,rate=16000,channels=1 ! avenc_aac ! aacparse ! rtpmp4gpay name=pay1 pt=98"
            }
        }
    }
}

/// The RTSP transports a fake camera accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeCameraTransport {
    /// Interleaved TCP and UDP.
    Any,
    /// Interleaved TCP only.
    TcpOnly,
    /// UDP only.
    UdpOnly,
}

impl Default for FakeCameraOptions {
    fn default() -> Self {
        FakeCameraOptions {
            width: 640,
            height: 480,
            fps: 30,
            gop_frames: 30,
            bitrate_kbps: 1000,
            credentials: None,
            digest: false,
            pattern: "ball",
            parameter_sets_in_band: true,
            transport: FakeCameraTransport::Any,
            tls: None,
            audio: None,
            h265: false,
        }
    }
}

impl fmt::Debug for FakeCameraOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeCameraOptions")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("fps", &self.fps)
            .field("gop_frames", &self.gop_frames)
            .field("bitrate_kbps", &self.bitrate_kbps)
            .field("credentials", &self.credentials.as_ref().map(|_| "***"))
            .field("digest", &self.digest)
            .field("pattern", &self.pattern)
            .field("parameter_sets_in_band", &self.parameter_sets_in_band)
            .field("transport", &self.transport)
            .field("tls", &self.tls.is_some())
            .field("audio", &self.audio)
            .field("h265", &self.h265)
            .finish()
    }
}

impl FakeCameraOptions {
    fn launch_line(&self) -> Result<String, PipelineError> {
        let checks = [
            ("width", self.width, 16, 3840),
            ("height", self.height, 16, 2160),
            ("fps", self.fps, 1, 120),
            ("gop_frames", self.gop_frames, 1, 1000),
            ("bitrate_kbps", self.bitrate_kbps, 16, 100_000),
        ];
        for (name, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(PipelineError::FakeCamera(format!(
                    "{name} must be {min}..={max}, got {value}"
                )));
            }
        }
        if !self
            .pattern
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(PipelineError::FakeCamera(format!(
                "pattern must be a videotestsrc pattern name, got '{}'",
                self.pattern
            )));
        }
        // Out of band: x264 in AVC form, not repeating its headers, keeps SPS/PPS in its codec
        // data only, and the payloader then puts them in the SDP alone.
        let (stream_format, config_interval, x264_options) = if self.parameter_sets_in_band {
            ("byte-stream", -1, "")
        } else {
            ("avc", 0, " option-string=repeat-headers=0")
        };
        let encode = if self.h265 {
            format!(
                "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={} bitrate={} ! \
                 video/x-h265,profile=main ! rtph265pay name=pay0 pt=96 config-interval=-1",
                self.gop_frames, self.bitrate_kbps
            )
        } else {
            format!(
                "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={} bitrate={}{x264_options} ! \
                 video/x-h264,stream-format={stream_format} ! \
                 rtph264pay name=pay0 pt=96 config-interval={config_interval}",
                self.gop_frames, self.bitrate_kbps
            )
        };
        Ok(format!(
            "( videotestsrc is-live=true pattern={} ! \
             video/x-raw,width={},height={},framerate={}/1 ! {encode} {audio} )",
            self.pattern,
            self.width,
            self.height,
            self.fps,
            audio = self
                .audio
                .map(|audio| format!(
                    " audiotestsrc is-live=true wave=sine freq=440 volume=0.3 ! audioconvert ! \
                     audioresample ! {}",
                    audio.branch()
                ))
                .unwrap_or_default()
        ))
    }
}

/// A fake IP camera: an RTSP server in this process, on 127.0.0.1. Stopped on drop.
pub struct FakeRtspCamera {
    port: u16,
    tls: bool,
    context: glib::MainContext,
    main_loop: glib::MainLoop,
    thread: Option<JoinHandle<()>>,
}

impl FakeRtspCamera {
    /// Starts the server on an ephemeral port, on its own glib main loop thread; returns once it
    /// listens.
    pub fn start(options: FakeCameraOptions) -> Result<FakeRtspCamera, PipelineError> {
        FakeRtspCamera::start_on_port(options, 0)
    }

    /// Like [`FakeRtspCamera::start`], on a given port (0: ephemeral). For tests that bring a
    /// camera back where it was.
    pub fn start_on_port(
        options: FakeCameraOptions,
        port: u16,
    ) -> Result<FakeRtspCamera, PipelineError> {
        crate::init()?;
        let launch = options.launch_line()?;
        let tls = options.tls.is_some();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let thread = thread::Builder::new()
            .name("fake-rtsp-camera".to_owned())
            .spawn(move || serve(&launch, &options, port, ready_tx))
            .map_err(|source| PipelineError::Thread {
                name: "fake-rtsp-camera".to_owned(),
                source,
            })?;
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok((port, context, main_loop))) => Ok(FakeRtspCamera {
                port,
                tls,
                context,
                main_loop,
                thread: Some(thread),
            }),
            Ok(Err(error)) => {
                let _ = thread.join();
                Err(error)
            }
            // The thread finds the receiver gone when it is ready, and ends by itself.
            Err(_) => Err(PipelineError::FakeCamera(format!(
                "server not listening within {} s",
                START_TIMEOUT.as_secs()
            ))),
        }
    }

    /// `rtsp://127.0.0.1:PORT/cam` (`rtsps://` with TLS; no credentials in it, even when they
    /// are required).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rtsps" } else { "rtsp" };
        format!("{scheme}://127.0.0.1:{}{MOUNT}", self.port)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Disconnects every client, closes the listening socket and joins the server thread.
    /// Also done on drop.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            // Through the context rather than `quit()` from here: a quit that came before the
            // thread entered `run()` would be lost, and the join would never return.
            let main_loop = self.main_loop.clone();
            self.context.invoke(move || main_loop.quit());
            if thread.join().is_err() {
                tracing::error!("fake RTSP camera thread panicked");
            }
        }
    }
}

impl Drop for FakeRtspCamera {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for FakeRtspCamera {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeRtspCamera")
            .field("url", &self.url())
            .finish()
    }
}

type Ready = Result<(u16, glib::MainContext, glib::MainLoop), PipelineError>;

/// The server thread: sets the server up on a fresh main context, reports the port, runs the
/// loop until quit, then disconnects clients and removes the listening source.
fn serve(launch: &str, options: &FakeCameraOptions, port: u16, ready: mpsc::SyncSender<Ready>) {
    let context = glib::MainContext::new();
    let main_loop = glib::MainLoop::new(Some(&context), false);
    // Clients attach to the thread-default context of the thread that accepts them: this one.
    let pushed = context.with_thread_default(|| {
        let server = rtsp_server::RTSPServer::new();
        let setup = set_up(&server, launch, options, port, &context);
        let source_id = match setup {
            Ok((source_id, port)) => {
                if ready
                    .send(Ok((port, context.clone(), main_loop.clone())))
                    .is_err()
                {
                    remove_source(&context, source_id);
                    return;
                }
                source_id
            }
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        main_loop.run();
        server.client_filter(Some(&mut |_, _| rtsp_server::RTSPFilterResult::Remove));
        remove_source(&context, source_id);
        if let Some(mounts) = server.mount_points() {
            mounts.remove_factory(MOUNT);
        }
        // Let the closing clients' pending work run; bounded.
        for _ in 0..1000 {
            if !context.iteration(false) {
                break;
            }
        }
    });
    if pushed.is_err() {
        tracing::error!("fake RTSP camera could not own its main context");
    }
}

fn set_up(
    server: &rtsp_server::RTSPServer,
    launch: &str,
    options: &FakeCameraOptions,
    port: u16,
    context: &glib::MainContext,
) -> Result<(glib::SourceId, u16), PipelineError> {
    use rtsp_server::gst_rtsp::{RTSPAuthMethod, RTSPLowerTrans};
    let fail = |what: &str| PipelineError::FakeCamera(what.to_owned());
    server.set_address("127.0.0.1");
    server.set_service(&port.to_string());
    let mounts = server
        .mount_points()
        .ok_or_else(|| fail("server has no mount points"))?;
    let factory = rtsp_server::RTSPMediaFactory::new();
    factory.set_launch(launch);
    factory.set_shared(true);
    factory.set_protocols(match options.transport {
        FakeCameraTransport::Any => RTSPLowerTrans::TCP | RTSPLowerTrans::UDP,
        FakeCameraTransport::TcpOnly => RTSPLowerTrans::TCP,
        FakeCameraTransport::UdpOnly => RTSPLowerTrans::UDP,
    });
    let auth = rtsp_server::RTSPAuth::new();
    let mut needs_auth = false;
    if let Some((cert, key)) = &options.tls {
        let certificate = rtsp_server::gio::TlsCertificate::from_pem(&format!("{cert}\n{key}"))
            .map_err(|e| PipelineError::FakeCamera(format!("TLS certificate: {e}")))?;
        auth.set_tls_certificate(Some(&certificate));
        needs_auth = true;
    }
    if let Some((user, password)) = &options.credentials {
        let token = rtsp_server::RTSPToken::builder()
            .field(rtsp_server::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "camera-user")
            .build();
        if options.digest {
            auth.set_supported_methods(RTSPAuthMethod::Digest);
            auth.add_digest(user, password, &token);
        } else {
            let basic = rtsp_server::RTSPAuth::make_basic(user, password);
            auth.add_basic(basic.as_str(), &token);
        }
        factory.add_role_from_structure(
            &gst::Structure::builder("camera-user")
                .field(rtsp_server::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                .field(rtsp_server::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                .build(),
        );
        needs_auth = true;
    } else if options.tls.is_some() {
        // TLS alone: anyone who completes the handshake may watch.
        let mut token = rtsp_server::RTSPToken::builder()
            .field(rtsp_server::RTSP_TOKEN_MEDIA_FACTORY_ROLE, "anonymous")
            .build();
        auth.set_default_token(Some(&mut token));
        factory.add_role_from_structure(
            &gst::Structure::builder("anonymous")
                .field(rtsp_server::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                .field(rtsp_server::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                .build(),
        );
    }
    if needs_auth {
        server.set_auth(Some(&auth));
    }
    mounts.add_factory(MOUNT, factory);
    let source_id = server
        .attach(Some(context))
        .map_err(|e| PipelineError::FakeCamera(format!("could not listen on port {port}: {e}")))?;
    match u16::try_from(server.bound_port()) {
        Ok(port) if port > 0 => Ok((source_id, port)),
        _ => {
            remove_source(context, source_id);
            Err(fail("server bound no port"))
        }
    }
}

/// Destroys a source of `context` (`SourceId::remove` would look in the global default context).
fn remove_source(context: &glib::MainContext, source_id: glib::SourceId) {
    if let Some(source) = context.find_source_by_id(&source_id) {
        source.destroy();
    }
}
