//! Why a camera pipeline failed, in a few kinds an operator can act on (and a metric can count
//! with a bounded label): the camera cannot be reached, refuses our credentials, does not have the
//! stream, stopped sending, sent something that could not be handled, or something else.

/// A kind of pipeline failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The camera could not be reached or the connection broke (refused, timed out, TLS).
    Connect = 0,
    /// The camera refused the credentials (RTSP 401).
    Auth = 1,
    /// The camera has no such stream (RTSP 404), or the device does not exist.
    NotFound = 2,
    /// No packet for the stall timeout.
    Stall = 3,
    /// The stream could not be handled (format, decoding, negotiation), or it ended.
    Stream = 4,
    /// Anything else.
    Other = 5,
}

impl FailureKind {
    /// Every kind, in index order.
    pub const ALL: [FailureKind; 6] = [
        FailureKind::Connect,
        FailureKind::Auth,
        FailureKind::NotFound,
        FailureKind::Stall,
        FailureKind::Stream,
        FailureKind::Other,
    ];

    /// Lower-case names (for metric labels), in index order.
    pub const NAMES: [&'static str; 6] =
        ["connect", "auth", "not_found", "stall", "stream", "other"];

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The kind of a GStreamer error.
    pub fn of_error(error: &gstreamer::glib::Error) -> FailureKind {
        use gstreamer::{CoreError, ResourceError, StreamError};
        if let Some(resource) = error.kind::<ResourceError>() {
            return match resource {
                ResourceError::NotAuthorized => FailureKind::Auth,
                ResourceError::NotFound => FailureKind::NotFound,
                ResourceError::OpenRead
                | ResourceError::OpenWrite
                | ResourceError::OpenReadWrite
                | ResourceError::Read
                | ResourceError::Write
                | ResourceError::Busy
                | ResourceError::Settings => FailureKind::Connect,
                _ => FailureKind::Other,
            };
        }
        if error.kind::<StreamError>().is_some() {
            return FailureKind::Stream;
        }
        if let Some(CoreError::Negotiation) = error.kind::<CoreError>() {
            return FailureKind::Stream;
        }
        FailureKind::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstreamer::glib::Error;
    use gstreamer::{CoreError, LibraryError, ResourceError, StreamError};

    #[test]
    fn gstreamer_errors_map_to_kinds() {
        let cases = [
            (
                Error::new(ResourceError::NotAuthorized, "401"),
                FailureKind::Auth,
            ),
            (
                Error::new(ResourceError::NotFound, "404"),
                FailureKind::NotFound,
            ),
            (
                Error::new(ResourceError::OpenRead, "refused"),
                FailureKind::Connect,
            ),
            (
                Error::new(ResourceError::Read, "reset"),
                FailureKind::Connect,
            ),
            (Error::new(StreamError::Decode, "bad"), FailureKind::Stream),
            (
                Error::new(CoreError::Negotiation, "caps"),
                FailureKind::Stream,
            ),
            (Error::new(LibraryError::Init, "lib"), FailureKind::Other),
        ];
        for (error, kind) in cases {
            assert_eq!(FailureKind::of_error(&error), kind, "{error}");
        }
        for (kind, name) in FailureKind::ALL.iter().zip(FailureKind::NAMES) {
            assert_eq!(kind.as_str(), name);
        }
    }
}
