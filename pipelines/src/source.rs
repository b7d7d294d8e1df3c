//! Camera sources: the `source = "…"` string of a camera, parsed into what a pipeline is built from.
//!
//! - `rtsp://[user:pass@]host[:port]/path[?transport=tcp|udp]` and `rtsps://…[?tls_ca=/ca.pem]`:
//!   an IP camera (RTSP over TLS checked against the system's CAs, or those of `tls_ca`).
//! - `test://<pattern>[?width=&height=&fps=&gop=&bitrate=&audio=opus|pcmu|pcma]`: a videotestsrc
//!   pattern, encoded live, with a test tone if asked.
//! - `v4l2:///dev/videoN`: a local (USB) camera.
//! - `rtp://ADDRESS:PORT[?pt=96&passthrough=true]`: H.264 RTP pushed to this box (an encoder, or a
//!   camera's multicast stream when ADDRESS is a multicast group), as Janus's streaming plugin takes it.
//!
//! Credentials are kept apart from the location from the start: the location handed to GStreamer
//! never has them, `Display` and `Debug` show `***` in their place, and no error repeats them.
//! [`CameraSource::redacted`] is the only form of a source that is ever logged.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use percent_encoding::percent_decode_str;
use url::Url;

use crate::audio::AudioCodec;
use crate::error::SourceError;

/// Where a camera's video comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CameraSource {
    /// An IP camera reached over RTSP (or RTSP over TLS).
    Rtsp(RtspSource),
    /// A built-in test pattern, encoded live to H.264.
    Test(TestSource),
    /// A local Video4Linux2 device, encoded live to H.264.
    V4l2(V4l2Source),
    /// H.264 RTP pushed to a UDP port of this box.
    Rtp(RtpSource),
}

impl CameraSource {
    /// Parses a camera source string; see the module docs for the accepted forms.
    ///
    /// Never panics; every rejection says what is wrong, without repeating credentials.
    pub fn parse(source: &str) -> Result<CameraSource, SourceError> {
        let source = source.trim();
        if source.is_empty() {
            return Err(SourceError::Empty);
        }
        // The scheme is checked before the URL parser sees the rest, so that an unknown scheme
        // is reported as such rather than as whatever the parser makes of the remainder.
        let (scheme, rest) = match source.split_once(':') {
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
            None => {
                return Err(SourceError::Malformed(
                    "no scheme (like rtsp://)".to_owned(),
                ));
            }
        };
        if !matches!(scheme.as_str(), "rtsp" | "rtsps" | "test" | "v4l2" | "rtp") {
            // Named only when it looks like a scheme followed by `//`: in `admin:pw@host`, what
            // comes before the colon is a user name, not something to repeat in an error.
            let looks_like_scheme = rest.starts_with("//")
                && scheme.len() <= 32
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
            return Err(if looks_like_scheme {
                SourceError::UnknownScheme(scheme)
            } else {
                SourceError::Malformed("no scheme (like rtsp://)".to_owned())
            });
        }
        let url = Url::parse(source).map_err(|e| SourceError::Malformed(e.to_string()))?;
        match scheme.as_str() {
            "rtsp" => RtspSource::from_url(&url, "rtsp").map(CameraSource::Rtsp),
            "rtsps" => RtspSource::from_url(&url, "rtsps").map(CameraSource::Rtsp),
            "test" => TestSource::from_url(&url).map(CameraSource::Test),
            "rtp" => RtpSource::from_url(&url).map(CameraSource::Rtp),
            _ => V4l2Source::from_url(&url).map(CameraSource::V4l2),
        }
    }

    /// The source as a URL with the user, the password and credential-like query values
    /// replaced by `***`: the only form of a source that may be logged or shown.
    pub fn redacted(&self) -> String {
        match self {
            CameraSource::Rtsp(rtsp) => rtsp.redacted.clone(),
            CameraSource::Test(test) => test.url.clone(),
            CameraSource::V4l2(v4l2) => format!("v4l2://{}", v4l2.device),
            CameraSource::Rtp(rtp) => rtp.url(),
        }
    }

    /// The kind of source, for logs and metric labels: `rtsp`, `test`, `v4l2` or `rtp`
    /// (`rtsps` counts as `rtsp`).
    pub fn kind(&self) -> &'static str {
        match self {
            CameraSource::Rtsp(_) => "rtsp",
            CameraSource::Test(_) => "test",
            CameraSource::V4l2(_) => "v4l2",
            CameraSource::Rtp(_) => "rtp",
        }
    }
}

impl fmt::Display for CameraSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl FromStr for CameraSource {
    type Err = SourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CameraSource::parse(s)
    }
}

/// How RTP travels from an RTSP camera.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtspTransport {
    /// Interleaved in the RTSP TCP connection (the default: works through NAT and firewalls).
    Tcp,
    /// Separate UDP ports for RTP and RTCP.
    Udp,
}

impl RtspTransport {
    /// The value of rtspsrc's `protocols` property.
    pub(crate) fn gst_protocols(self) -> &'static str {
        match self {
            RtspTransport::Tcp => "tcp",
            RtspTransport::Udp => "udp",
        }
    }
}

/// An RTSP camera: a location without credentials, the credentials apart, and the transport.
#[derive(Clone, PartialEq, Eq)]
pub struct RtspSource {
    /// `rtsp://host:port/path?query`, without user, password or our `transport` parameter.
    location: String,
    /// The source as given, with secrets replaced by `***`.
    redacted: String,
    credentials: Option<Credentials>,
    /// Values of credential-like query parameters (`password=…`), scrubbed from error text.
    query_secrets: Vec<String>,
    transport: RtspTransport,
    tls: bool,
    /// For `rtsps://`: the CAs that sign the camera's certificate (absent: the system's).
    tls_ca: Option<PathBuf>,
}

/// Query parameter names whose values are treated as secrets (compared case-insensitively).
const SECRET_QUERY_NAMES: &[&str] = &[
    "user",
    "username",
    "usr",
    "password",
    "passwd",
    "pass",
    "pwd",
    "pw",
    "token",
    "auth",
    "key",
    "secret",
    "signature",
    "sig",
];

impl RtspSource {
    fn from_url(url: &Url, scheme: &'static str) -> Result<RtspSource, SourceError> {
        let host = match url.host_str() {
            Some(host) if !host.is_empty() => host,
            _ => return Err(SourceError::MissingHost { scheme }),
        };
        if url.fragment().is_some() {
            return Err(SourceError::Unsupported {
                scheme,
                part: "fragment ('#…')",
            });
        }
        let user = decode_credential(url.username())?;
        let password = url.password().map(decode_credential).transpose()?;
        let credentials = match (user.is_empty(), password) {
            (true, None) => None,
            (_, password) => Some(Credentials { user, password }),
        };

        // Our own parameters (`transport`, `tls_ca`) are taken out of the query; the camera's own
        // parameters (`?channel=1&subtype=0`, …) are kept verbatim, as cameras can be picky about
        // encoding.
        let mut transport = None;
        let mut tls_ca: Option<PathBuf> = None;
        let mut kept = Vec::new();
        let mut redacted_query = Vec::new();
        let mut query_secrets = Vec::new();
        for segment in url.query().unwrap_or("").split('&') {
            if segment.is_empty() {
                continue;
            }
            let (raw_name, raw_value) = segment.split_once('=').unwrap_or((segment, ""));
            let name = decode_lossy(raw_name);
            if name == "tls_ca" {
                if scheme != "rtsps" {
                    return Err(SourceError::Unsupported {
                        scheme,
                        part: "tls_ca (it applies to rtsps:// sources only)",
                    });
                }
                if tls_ca.is_some() {
                    return Err(SourceError::DuplicateParameter(name));
                }
                let path = PathBuf::from(decode_lossy(raw_value));
                if !path.is_absolute() {
                    return Err(SourceError::Malformed(
                        "tls_ca must be an absolute path to a PEM file of CA certificates"
                            .to_owned(),
                    ));
                }
                tls_ca = Some(path);
                redacted_query.push(segment.to_owned());
                continue;
            }
            if name == "transport" {
                if transport.is_some() {
                    return Err(SourceError::DuplicateParameter(name));
                }
                transport = Some(match decode_lossy(raw_value).as_str() {
                    "tcp" => RtspTransport::Tcp,
                    "udp" => RtspTransport::Udp,
                    other => {
                        return Err(SourceError::InvalidTransport(
                            other.chars().take(32).collect(),
                        ));
                    }
                });
                redacted_query.push(segment.to_owned());
                continue;
            }
            kept.push(segment);
            let secret = SECRET_QUERY_NAMES
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&name));
            if secret && !raw_value.is_empty() {
                query_secrets.push(raw_value.to_owned());
                query_secrets.push(decode_lossy(raw_value));
                redacted_query.push(format!("{raw_name}=***"));
            } else {
                redacted_query.push(segment.to_owned());
            }
        }

        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let authority_and_path = format!("{host}{port}{}", url.path());
        let join_query = |parts: &[String]| -> String {
            if parts.is_empty() {
                String::new()
            } else {
                format!("?{}", parts.join("&"))
            }
        };
        let kept: Vec<String> = kept.into_iter().map(str::to_owned).collect();
        let location = format!("{scheme}://{authority_and_path}{}", join_query(&kept));
        let userinfo = match &credentials {
            None => "",
            Some(Credentials { password: None, .. }) => "***@",
            Some(Credentials {
                password: Some(_), ..
            }) => "***:***@",
        };
        let redacted = format!(
            "{scheme}://{userinfo}{authority_and_path}{}",
            join_query(&redacted_query)
        );
        Ok(RtspSource {
            location,
            redacted,
            credentials,
            query_secrets,
            transport: transport.unwrap_or(RtspTransport::Tcp),
            tls: scheme == "rtsps",
            tls_ca,
        })
    }

    /// The URL given to rtspsrc: no user, no password, no `transport` parameter.
    ///
    /// It may still carry the camera's own query parameters verbatim; log
    /// [`CameraSource::redacted`] instead.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// TCP (interleaved, the default) or UDP.
    pub fn transport(&self) -> RtspTransport {
        self.transport
    }

    /// Whether a user (and maybe a password) was given.
    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// Whether this is `rtsps://` (RTSP over TLS).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// For `rtsps://`, the PEM file of the CAs its certificate must chain to (`?tls_ca=`);
    /// `None`: the system's trust store. The camera's name is checked against its certificate
    /// either way.
    pub fn tls_ca(&self) -> Option<&Path> {
        self.tls_ca.as_deref()
    }

    /// The user and password, for rtspsrc's `user-id` / `user-pw` properties only.
    pub(crate) fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// Replaces every secret of this source (user, password, credential-like query values)
    /// found in `text` by `***`: for error text coming back from GStreamer.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut secrets: Vec<&str> = self.query_secrets.iter().map(String::as_str).collect();
        if let Some(credentials) = &self.credentials {
            secrets.push(&credentials.user);
            if let Some(password) = &credentials.password {
                secrets.push(password);
            }
        }
        // Longest first, so that a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut text = text.to_owned();
        for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
            if text.contains(secret) {
                text = text.replace(secret, "***");
            }
        }
        text
    }
}

impl fmt::Debug for RtspSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtspSource")
            .field("url", &self.redacted)
            .field("credentials", &self.credentials)
            .field("transport", &self.transport)
            .finish()
    }
}

/// A user and password, kept out of every URL, log line and `Debug` print.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) user: String,
    pub(crate) password: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

fn decode_credential(raw: &str) -> Result<String, SourceError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| SourceError::InvalidCredentials)
}

fn decode_lossy(raw: &str) -> String {
    percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

/// The videotestsrc patterns of GStreamer 1.22, by their nick.
pub const TEST_PATTERNS: &[&str] = &[
    "smpte",
    "snow",
    "black",
    "white",
    "red",
    "green",
    "blue",
    "checkers-1",
    "checkers-2",
    "checkers-4",
    "checkers-8",
    "circular",
    "blink",
    "smpte75",
    "zone-plate",
    "gamut",
    "chroma-zone-plate",
    "solid-color",
    "ball",
    "smpte100",
    "bar",
    "pinwheel",
    "spokes",
    "gradient",
    "colors",
    "smpte-rp-219",
];

/// A test pattern camera: videotestsrc encoded live with x264.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestSource {
    url: String,
    pattern: &'static str,
    width: u32,
    height: u32,
    fps: u32,
    gop_frames: u32,
    bitrate_kbps: u32,
    audio: Option<AudioCodec>,
}

/// A numeric `test://` parameter: its name, range, default, and where it goes.
struct TestParameter {
    name: &'static str,
    min: u32,
    max: u32,
    even: bool,
}

const WIDTH: TestParameter = TestParameter {
    name: "width",
    min: 16,
    max: 3840,
    even: true,
};
const HEIGHT: TestParameter = TestParameter {
    name: "height",
    min: 16,
    max: 2160,
    even: true,
};
const FPS: TestParameter = TestParameter {
    name: "fps",
    min: 1,
    max: 60,
    even: false,
};
const GOP: TestParameter = TestParameter {
    name: "gop",
    min: 1,
    max: 600,
    even: false,
};
const BITRATE: TestParameter = TestParameter {
    name: "bitrate",
    min: 100,
    max: 20_000,
    even: false,
};

impl TestParameter {
    fn parse(&self, value: &str) -> Result<u32, SourceError> {
        let number: u64 = value.parse().map_err(|_| SourceError::NotANumber {
            name: self.name,
            value: value.chars().take(32).collect(),
        })?;
        if number < u64::from(self.min) || number > u64::from(self.max) {
            return Err(SourceError::OutOfRange {
                name: self.name,
                min: self.min,
                max: self.max,
                value: number,
            });
        }
        let number = u32::try_from(number).expect("within a u32 range checked above");
        if self.even && number % 2 == 1 {
            return Err(SourceError::OddSize {
                name: self.name,
                value: number,
            });
        }
        Ok(number)
    }
}

impl TestSource {
    fn from_url(url: &Url) -> Result<TestSource, SourceError> {
        let unsupported = |part| SourceError::Unsupported {
            scheme: "test",
            part,
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(unsupported("user or password"));
        }
        if url.port().is_some() {
            return Err(unsupported("port"));
        }
        if url.fragment().is_some() {
            return Err(unsupported("fragment ('#…')"));
        }
        let pattern = url.host_str().unwrap_or("").to_ascii_lowercase();
        if pattern.is_empty() {
            return Err(SourceError::MissingPattern);
        }
        if !matches!(url.path(), "" | "/") {
            return Err(unsupported("path (the pattern is the host: test://ball)"));
        }
        let pattern = TEST_PATTERNS
            .iter()
            .copied()
            .find(|p| *p == pattern)
            .ok_or_else(|| SourceError::UnknownPattern {
                pattern: pattern.chars().take(32).collect(),
                expected: TEST_PATTERNS.join(", "),
            })?;

        let mut source = TestSource {
            url: url.as_str().to_owned(),
            pattern,
            width: 1280,
            height: 720,
            fps: 30,
            gop_frames: 30,
            bitrate_kbps: 2000,
            audio: None,
        };
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in url.query_pairs() {
            if seen.iter().any(|s| *s == name) {
                return Err(SourceError::DuplicateParameter(name.into_owned()));
            }
            if name == "audio" {
                source.audio = Some(AudioCodec::parse(&value).ok_or_else(|| {
                    SourceError::Malformed(format!(
                        "audio must be opus, pcmu or pcma, not '{}'",
                        value.chars().take(16).collect::<String>()
                    ))
                })?);
                seen.push(name.into_owned());
                continue;
            }
            let (parameter, slot) = match name.as_ref() {
                "width" => (&WIDTH, &mut source.width),
                "height" => (&HEIGHT, &mut source.height),
                "fps" => (&FPS, &mut source.fps),
                "gop" => (&GOP, &mut source.gop_frames),
                "bitrate" => (&BITRATE, &mut source.bitrate_kbps),
                _ => {
                    return Err(SourceError::UnknownParameter {
                        scheme: "test",
                        name: name.chars().take(32).collect(),
                        expected: "width, height, fps, gop, bitrate or audio",
                    });
                }
            };
            *slot = parameter.parse(&value)?;
            seen.push(name.into_owned());
        }
        Ok(source)
    }

    /// The videotestsrc pattern nick (one of [`TEST_PATTERNS`]).
    pub fn pattern(&self) -> &'static str {
        self.pattern
    }

    /// Frame width in pixels (default 1280).
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Frame height in pixels (default 720).
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Frames per second (default 30).
    pub fn fps(&self) -> u32 {
        self.fps
    }

    /// Frames from one keyframe to the next (default 30).
    pub fn gop_frames(&self) -> u32 {
        self.gop_frames
    }

    /// Encoder bitrate in kbit/s (default 2000).
    pub fn bitrate_kbps(&self) -> u32 {
        self.bitrate_kbps
    }

    /// A test tone to send with the pattern (`audio=opus|pcmu|pcma`), if any.
    pub fn audio(&self) -> Option<AudioCodec> {
        self.audio
    }
}

/// A local Video4Linux2 camera.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct V4l2Source {
    device: String,
}

impl V4l2Source {
    fn from_url(url: &Url) -> Result<V4l2Source, SourceError> {
        let unsupported = |part| SourceError::Unsupported {
            scheme: "v4l2",
            part,
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(unsupported("user or password"));
        }
        if url.host_str().is_some_and(|h| !h.is_empty()) || url.port().is_some() {
            return Err(unsupported(
                "host; write the device as a path: v4l2:///dev/video0",
            ));
        }
        if url.query().is_some() {
            return Err(unsupported("parameters"));
        }
        if url.fragment().is_some() {
            return Err(unsupported("fragment ('#…')"));
        }
        let device = url.path();
        let allowed = |c: char| c.is_ascii_alphanumeric() || "/._-:+".contains(c);
        let valid = device.len() > "/dev/".len()
            && device.starts_with("/dev/")
            && device.chars().all(allowed)
            && !device.split('/').any(|segment| segment == "..");
        if !valid {
            return Err(SourceError::InvalidDevice);
        }
        Ok(V4l2Source {
            device: device.to_owned(),
        })
    }

    /// The device path, e.g. `/dev/video0`.
    pub fn device(&self) -> &str {
        &self.device
    }
}

/// H.264 RTP pushed to a UDP port of this box.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpSource {
    address: std::net::IpAddr,
    port: u16,
    payload_type: u8,
    passthrough: bool,
}

impl RtpSource {
    fn from_url(url: &Url) -> Result<RtpSource, SourceError> {
        let unsupported = |part| SourceError::Unsupported {
            scheme: "rtp",
            part,
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(unsupported("user or password"));
        }
        if !matches!(url.path(), "" | "/") {
            return Err(unsupported("path; write rtp://ADDRESS:PORT"));
        }
        if url.fragment().is_some() {
            return Err(unsupported("fragment ('#…')"));
        }
        // rtp:// is not a scheme the URL standard knows: its host comes as text, not as an IP.
        let address = url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|h| h.parse::<std::net::IpAddr>().ok())
            .ok_or_else(|| {
                SourceError::Malformed(
                    "an rtp source is the IP address and port to receive on, e.g. \
                     rtp://0.0.0.0:5004 (or a multicast group)"
                        .to_owned(),
                )
            })?;
        let port = url
            .port()
            .filter(|p| *p != 0)
            .ok_or_else(|| SourceError::Malformed("an rtp source needs a port".to_owned()))?;
        let mut payload_type = 96;
        let mut passthrough = false;
        let mut seen = Vec::new();
        for (name, value) in url.query_pairs() {
            if seen.contains(&name) {
                return Err(SourceError::DuplicateParameter(name.into_owned()));
            }
            match name.as_ref() {
                "pt" => {
                    payload_type = value
                        .parse()
                        .ok()
                        .filter(|pt| (96..=127).contains(pt))
                        .ok_or_else(|| {
                            SourceError::Malformed(
                                "pt must be a dynamic RTP payload type, 96 to 127".to_owned(),
                            )
                        })?;
                }
                "passthrough" => {
                    passthrough = match value.as_ref() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => {
                            return Err(SourceError::Malformed(
                                "passthrough must be true or false".to_owned(),
                            ));
                        }
                    }
                }
                _ => return Err(unsupported("parameters other than pt and passthrough")),
            }
            seen.push(name);
        }
        Ok(RtpSource {
            address,
            port,
            payload_type,
            passthrough,
        })
    }

    /// The address to receive on (a local address, a wildcard, or a multicast group).
    pub fn address(&self) -> std::net::IpAddr {
        self.address
    }

    /// The UDP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The RTP payload type the sender uses for H.264.
    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    /// True when packets go to viewers as the sender packetized them (no re-payloading: the
    /// sender must keep packets under ~1200 bytes and send SPS/PPS in-band before each IDR).
    pub fn passthrough(&self) -> bool {
        self.passthrough
    }

    fn url(&self) -> String {
        let address = match self.address {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        format!(
            "rtp://{address}:{}?pt={}&passthrough={}",
            self.port, self.payload_type, self.passthrough
        )
    }
}

#[cfg(test)]
mod tests;
