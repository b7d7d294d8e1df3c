//! The crate's errors: [`PipelineError`] for everything that builds or runs GStreamer (camera
//! ingest, snapshots, the fake camera), and
//! [`SourceError`] for a camera source string that cannot be used.
//!
//! Messages say what is wrong and never carry credentials: a source's user and password never
//! reach an error, a log line or a `Debug` print.

/// What went wrong building or running a pipeline (or the fake camera used by tests).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// `gst::init()` failed (GStreamer libraries missing or broken).
    #[error("GStreamer could not be initialised: {0}")]
    Init(String),
    /// The pipeline needs a GStreamer element whose plugin is not installed.
    #[error("GStreamer element '{0}' is missing; is its plugin package installed?")]
    MissingElement(String),
    /// GStreamer refused the pipeline description (a bug here, or an unusual GStreamer build).
    #[error("could not build the pipeline: {0}")]
    Build(String),
    /// A snapshot's keyframe could not be decoded to a picture (broken or incomplete packets,
    /// or the decoder failed or took too long).
    #[error("could not decode the keyframe: {0}")]
    Decode(String),
    /// The camera id cannot name a thread (it contains a NUL byte).
    #[error("camera id must not contain a NUL byte")]
    InvalidId,
    /// The operating system would not start a thread.
    #[error("could not start thread '{name}': {source}")]
    Thread {
        /// The thread's name.
        name: String,
        /// Why it could not start.
        #[source]
        source: std::io::Error,
    },
    /// A recording muxer failed or could not keep up.
    #[error("recording muxer: {0}")]
    Muxer(String),
    /// A recorded segment could not be read back or an export could not be written.
    #[error("export: {0}")]
    Export(String),
    /// The in-process RTSP server of the fake camera could not be started.
    #[error("fake RTSP camera: {0}")]
    FakeCamera(String),
}

/// Why a camera source string (`rtsp://…`, `rtsps://…`, `test://…`, `v4l2://…`) was rejected.
///
/// The messages never repeat the user or password of the rejected string.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The string is empty (or only whitespace).
    #[error(
        "camera source is empty; expected e.g. rtsp://host/stream, test://ball or v4l2:///dev/video0"
    )]
    Empty,
    /// The string is not a URL at all.
    #[error("camera source is not a valid URL: {0}")]
    Malformed(String),
    /// The scheme is not one this crate can ingest.
    #[error("unknown scheme '{0}'; expected rtsp, rtsps, test, v4l2 or rtp")]
    UnknownScheme(String),
    /// An RTSP URL without a host.
    #[error("{scheme} source needs a host, e.g. {scheme}://192.0.2.10:554/stream1")]
    MissingHost {
        /// `rtsp` or `rtsps`.
        scheme: &'static str,
    },
    /// `?transport=` is neither `tcp` nor `udp`.
    #[error("transport must be tcp or udp, got '{0}'")]
    InvalidTransport(String),
    /// The user or password is not valid UTF-8 once percent-decoded.
    #[error("the user or password of the rtsp source is not valid UTF-8 once percent-decoded")]
    InvalidCredentials,
    /// A part of the URL that this kind of source does not take (a port for `test://`, …).
    #[error("{scheme} source takes no {part}")]
    Unsupported {
        /// The source's scheme.
        scheme: &'static str,
        /// What was given that it does not take, with a hint.
        part: &'static str,
    },
    /// A `test://` URL without a pattern.
    #[error("test source needs a pattern, e.g. test://ball")]
    MissingPattern,
    /// A `test://` pattern that videotestsrc does not have.
    #[error("unknown test pattern '{pattern}'; expected one of {expected}")]
    UnknownPattern {
        /// The pattern that was asked for.
        pattern: String,
        /// The patterns there are, comma separated.
        expected: String,
    },
    /// A query parameter that this kind of source does not take.
    #[error("unknown parameter '{name}' for {scheme} source; expected {expected}")]
    UnknownParameter {
        /// The source's scheme.
        scheme: &'static str,
        /// The parameter's name.
        name: String,
        /// The parameters there are.
        expected: &'static str,
    },
    /// The same query parameter twice.
    #[error("parameter '{0}' is given more than once")]
    DuplicateParameter(String),
    /// A numeric parameter that is not a whole number.
    #[error("{name} must be a whole number, got '{value}'")]
    NotANumber {
        /// The parameter's name.
        name: &'static str,
        /// What was given.
        value: String,
    },
    /// A numeric parameter out of its range.
    #[error("{name} must be {min}..={max}, got {value}")]
    OutOfRange {
        /// The parameter's name.
        name: &'static str,
        /// Smallest accepted value.
        min: u32,
        /// Largest accepted value.
        max: u32,
        /// What was given.
        value: u64,
    },
    /// An odd width or height (4:2:0 H.264 needs even sizes).
    #[error("{name} must be even (H.264 4:2:0), got {value}")]
    OddSize {
        /// `width` or `height`.
        name: &'static str,
        /// What was given.
        value: u32,
    },
    /// A `v4l2://` device that is not an absolute path under `/dev/`.
    #[error(
        "v4l2 device must be a path under /dev/ made of letters, digits and / . _ - : +, e.g. v4l2:///dev/video0"
    )]
    InvalidDevice,
}
