use super::*;

fn parse(s: &str) -> CameraSource {
    CameraSource::parse(s).unwrap_or_else(|e| panic!("{s} should parse: {e}"))
}

fn error(s: &str) -> String {
    match CameraSource::parse(s) {
        Ok(source) => panic!("{s} should be rejected, got {source:?}"),
        Err(e) => e.to_string(),
    }
}

fn rtsp(s: &str) -> RtspSource {
    match parse(s) {
        CameraSource::Rtsp(rtsp) => rtsp,
        other => panic!("{s} should be rtsp, got {other:?}"),
    }
}

fn test(s: &str) -> TestSource {
    match parse(s) {
        CameraSource::Test(test) => test,
        other => panic!("{s} should be test, got {other:?}"),
    }
}

#[test]
fn rtsp_without_credentials_defaults_to_tcp() {
    let source = rtsp("rtsp://10.0.0.5:554/stream1");
    assert_eq!(source.location(), "rtsp://10.0.0.5:554/stream1");
    assert_eq!(source.transport(), RtspTransport::Tcp);
    assert!(!source.has_credentials());
    assert!(!source.is_tls());
    assert_eq!(
        parse("rtsp://10.0.0.5:554/stream1").redacted(),
        "rtsp://10.0.0.5:554/stream1"
    );
    assert_eq!(parse("rtsp://cam.example/").kind(), "rtsp");
}

#[test]
fn rtsp_credentials_leave_the_location_and_are_redacted() {
    let text = "rtsp://admin:S3cr%40t-pw@10.0.0.5:554/Streaming/Channels/101?transport=udp";
    let source = parse(text);
    let CameraSource::Rtsp(rtsp) = &source else {
        panic!("should be rtsp")
    };
    assert_eq!(
        rtsp.location(),
        "rtsp://10.0.0.5:554/Streaming/Channels/101"
    );
    assert_eq!(rtsp.transport(), RtspTransport::Udp);
    assert!(rtsp.has_credentials());
    let credentials = rtsp.credentials().expect("credentials");
    assert_eq!(credentials.user, "admin");
    assert_eq!(credentials.password.as_deref(), Some("S3cr@t-pw"));
    let redacted = "rtsp://***:***@10.0.0.5:554/Streaming/Channels/101?transport=udp";
    assert_eq!(source.redacted(), redacted);
    assert_eq!(source.to_string(), redacted);
    for shown in [
        source.redacted(),
        source.to_string(),
        format!("{source:?}"),
        format!("{source:#?}"),
    ] {
        assert!(!shown.contains("S3cr"), "password in {shown}");
        assert!(!shown.contains("admin"), "user in {shown}");
    }
}

#[test]
fn rtsp_user_without_password_is_redacted_too() {
    let source = parse("rtsp://operator@cam.local/live");
    assert_eq!(source.redacted(), "rtsp://***@cam.local/live");
    let CameraSource::Rtsp(rtsp) = &source else {
        panic!("should be rtsp")
    };
    assert_eq!(rtsp.credentials().and_then(|c| c.password.clone()), None);
    assert!(!format!("{source:?}").contains("operator"));
}

#[test]
fn rtsp_keeps_camera_query_parameters_and_hides_secret_ones() {
    let source =
        rtsp("rtsp://10.0.0.7/cam/realmonitor?channel=1&subtype=0&transport=tcp&password=hunter2");
    assert_eq!(
        source.location(),
        "rtsp://10.0.0.7/cam/realmonitor?channel=1&subtype=0&password=hunter2"
    );
    let redacted = CameraSource::Rtsp(source.clone()).redacted();
    assert_eq!(
        redacted,
        "rtsp://10.0.0.7/cam/realmonitor?channel=1&subtype=0&transport=tcp&password=***"
    );
    assert!(!format!("{source:?}").contains("hunter2"));
    assert_eq!(
        source.scrub("could not open rtsp://10.0.0.7/x?password=hunter2"),
        "could not open rtsp://10.0.0.7/x?password=***"
    );
}

#[test]
fn rtsps_and_ipv6_hosts_parse() {
    let source = rtsp("rtsps://[2001:db8::5]:322/main");
    assert!(source.is_tls());
    assert_eq!(source.location(), "rtsps://[2001:db8::5]:322/main");
    assert_eq!(
        rtsp("RTSP://Cam.Example/x").location(),
        "rtsp://Cam.Example/x"
    );
}

#[test]
fn rtsps_takes_a_ca_file_that_stays_out_of_the_location() {
    let source = rtsp("rtsps://cam.example/main?tls_ca=/etc/straja/camera-ca.pem&channel=1");
    assert_eq!(
        source.tls_ca(),
        Some(std::path::Path::new("/etc/straja/camera-ca.pem"))
    );
    assert_eq!(source.location(), "rtsps://cam.example/main?channel=1");
    assert_eq!(rtsp("rtsps://cam.example/main").tls_ca(), None);
    for bad in [
        "rtsp://cam.example/main?tls_ca=/ca.pem",
        "rtsps://cam.example/main?tls_ca=relative.pem",
        "rtsps://cam.example/main?tls_ca=/a.pem&tls_ca=/b.pem",
    ] {
        assert!(CameraSource::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn scrub_removes_user_and_password_from_text() {
    let source = rtsp("rtsp://alice:pa55word@10.0.0.5/s");
    assert_eq!(
        source.scrub("401 for alice with pa55word"),
        "401 for *** with ***"
    );
}

#[test]
fn rtsp_errors_say_what_is_wrong_without_credentials() {
    assert_eq!(
        error("rtsp://10.0.0.5/s?transport=sctp"),
        "transport must be tcp or udp, got 'sctp'"
    );
    assert_eq!(
        error("rtsp://u:topsecret@10.0.0.5/s?transport=tcp&transport=udp"),
        "parameter 'transport' is given more than once"
    );
    assert_eq!(
        error("rtsp:///stream"),
        "rtsp source needs a host, e.g. rtsp://192.0.2.10:554/stream1"
    );
    assert_eq!(
        error("rtsps:stream"),
        "rtsps source needs a host, e.g. rtsps://192.0.2.10:554/stream1"
    );
    assert_eq!(
        error("rtsp://h/s#frag"),
        "rtsp source takes no fragment ('#…')"
    );
    let bad_utf8 = error("rtsp://u:%ff%fe@10.0.0.5/s");
    assert_eq!(
        bad_utf8,
        "the user or password of the rtsp source is not valid UTF-8 once percent-decoded"
    );
    let malformed = error("rtsp://user:topsecret@[::1/stream");
    assert!(
        malformed.starts_with("camera source is not a valid URL: "),
        "{malformed}"
    );
    assert!(!malformed.contains("topsecret"), "{malformed}");
    let bad_port = error("rtsp://user:topsecret@host:99999/stream");
    assert!(!bad_port.contains("topsecret"), "{bad_port}");
}

#[test]
fn unknown_scheme_and_empty_sources_are_rejected() {
    assert_eq!(
        error("http://10.0.0.5/"),
        "unknown scheme 'http'; expected rtsp, rtsps, test, v4l2 or rtp"
    );
    assert_eq!(
        error("   "),
        "camera source is empty; expected e.g. rtsp://host/stream, test://ball or v4l2:///dev/video0"
    );
    assert_eq!(
        error("ball"),
        "camera source is not a valid URL: no scheme (like rtsp://)"
    );
    assert_eq!(
        error("file:///etc/passwd"),
        "unknown scheme 'file'; expected rtsp, rtsps, test, v4l2 or rtp"
    );
}

#[test]
fn test_source_defaults() {
    let source = test("test://ball");
    assert_eq!(source.pattern(), "ball");
    assert_eq!(
        (
            source.width(),
            source.height(),
            source.fps(),
            source.gop_frames(),
            source.bitrate_kbps()
        ),
        (1280, 720, 30, 30, 2000)
    );
    assert_eq!(parse("test://ball").redacted(), "test://ball");
    assert_eq!(parse("test://smpte/").kind(), "test");
}

#[test]
fn test_source_takes_a_test_tone() {
    assert_eq!(test("test://ball").audio(), None);
    assert_eq!(
        test("test://ball?audio=pcma").audio(),
        Some(crate::AudioCodec::Pcma)
    );
    assert!(CameraSource::parse("test://ball?audio=mp3").is_err());
    assert!(CameraSource::parse("test://ball?audio=opus&audio=pcmu").is_err());
}

#[test]
fn test_source_parameters() {
    let source = test("test://checkers-8?width=320&height=240&fps=15&gop=300&bitrate=500");
    assert_eq!(source.pattern(), "checkers-8");
    assert_eq!(
        (
            source.width(),
            source.height(),
            source.fps(),
            source.gop_frames(),
            source.bitrate_kbps()
        ),
        (320, 240, 15, 300, 500)
    );
    assert_eq!(
        parse("test://smpte?fps=60").to_string(),
        "test://smpte?fps=60"
    );
    assert_eq!(test("test://Ball").pattern(), "ball");
    for pattern in TEST_PATTERNS {
        assert_eq!(test(&format!("test://{pattern}")).pattern(), *pattern);
    }
}

#[test]
fn test_source_errors_say_what_is_wrong() {
    let unknown = error("test://foo");
    assert!(
        unknown.starts_with("unknown test pattern 'foo'; expected one of smpte, snow, black,"),
        "{unknown}"
    );
    assert!(unknown.contains("ball"));
    assert_eq!(
        error("test://"),
        "test source needs a pattern, e.g. test://ball"
    );
    assert_eq!(
        error("test://ball?width=8"),
        "width must be 16..=3840, got 8"
    );
    assert_eq!(
        error("test://ball?width=4000"),
        "width must be 16..=3840, got 4000"
    );
    assert_eq!(
        error("test://ball?height=4000"),
        "height must be 16..=2160, got 4000"
    );
    assert_eq!(
        error("test://ball?width=321"),
        "width must be even (H.264 4:2:0), got 321"
    );
    assert_eq!(error("test://ball?fps=0"), "fps must be 1..=60, got 0");
    assert_eq!(error("test://ball?gop=601"), "gop must be 1..=600, got 601");
    assert_eq!(
        error("test://ball?bitrate=50"),
        "bitrate must be 100..=20000, got 50"
    );
    assert_eq!(
        error("test://ball?fps=thirty"),
        "fps must be a whole number, got 'thirty'"
    );
    assert_eq!(
        error("test://ball?fps=-1"),
        "fps must be a whole number, got '-1'"
    );
    assert_eq!(
        error("test://ball?width=99999999999999999999999"),
        "width must be a whole number, got '99999999999999999999999'"
    );
    assert_eq!(
        error("test://ball?colour=red"),
        "unknown parameter 'colour' for test source; expected width, height, fps, gop, bitrate or audio"
    );
    assert_eq!(
        error("test://ball?fps=10&fps=20"),
        "parameter 'fps' is given more than once"
    );
    assert_eq!(error("test://ball:8000"), "test source takes no port");
    assert_eq!(
        error("test://u:secret@ball"),
        "test source takes no user or password"
    );
    assert_eq!(
        error("test://ball/extra"),
        "test source takes no path (the pattern is the host: test://ball)"
    );
}

#[test]
fn v4l2_source_parses_a_device_path() {
    let source = parse("v4l2:///dev/video0");
    let CameraSource::V4l2(v4l2) = &source else {
        panic!("should be v4l2")
    };
    assert_eq!(v4l2.device(), "/dev/video0");
    assert_eq!(source.redacted(), "v4l2:///dev/video0");
    assert_eq!(source.kind(), "v4l2");
    let by_id = "v4l2:///dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920-video-index0";
    assert_eq!(parse(by_id).to_string(), by_id);
}

#[test]
fn v4l2_errors_say_what_is_wrong() {
    let device_error = "v4l2 device must be a path under /dev/ made of letters, digits and / . _ - : +, e.g. v4l2:///dev/video0";
    assert_eq!(error("v4l2:///tmp/video0"), device_error);
    assert_eq!(error("v4l2:///dev/"), device_error);
    assert_eq!(error("v4l2:///dev/../etc/passwd"), device_error);
    assert_eq!(error("v4l2:///dev/video%200"), device_error);
    assert_eq!(
        error("v4l2://dev/video0"),
        "v4l2 source takes no host; write the device as a path: v4l2:///dev/video0"
    );
    assert_eq!(
        error("v4l2:///dev/video0?width=640"),
        "v4l2 source takes no parameters"
    );
    assert_eq!(
        error("v4l2://u:pw@localhost/dev/video0"),
        "v4l2 source takes no user or password"
    );
}

#[test]
fn parse_never_panics_on_odd_input() {
    let odd = [
        "rtsp://",
        "rtsp://:@",
        "rtsp://@/",
        "rtsp://:pw@h",
        "rtsp://h?&&=&transport",
        "test://?",
        "test://ball?=",
        "test://ball?width",
        "v4l2:",
        "v4l2://",
        "rtsp://h/%",
        "\u{0}rtsp://h",
        "rtsp://h\u{0}/",
        "rtsp://ü:ö@h/ä",
        "test://ball?width=%31%36",
        ":",
        "::::",
        "rtsp:",
    ];
    for input in odd {
        let _ = CameraSource::parse(input);
    }
    // `:pw@` has an empty user but a password: still credentials, still redacted.
    assert_eq!(parse("rtsp://:pw@h/s").redacted(), "rtsp://***:***@h/s");
    assert_eq!(test("test://ball?width=%31%36").width(), 16);
}

#[test]
fn rtp_push_sources_take_an_address_a_port_and_two_options() {
    let CameraSource::Rtp(rtp) = parse("rtp://0.0.0.0:5004") else {
        panic!("should be rtp")
    };
    assert_eq!(rtp.port(), 5004);
    assert_eq!(rtp.payload_type(), 96);
    assert!(!rtp.passthrough());
    let source = parse("rtp://[::1]:6000?pt=102&passthrough=true");
    assert_eq!(source.kind(), "rtp");
    assert_eq!(
        source.redacted(),
        "rtp://[::1]:6000?pt=102&passthrough=true"
    );
    let CameraSource::Rtp(rtp) = parse("rtp://239.1.2.3:5004/") else {
        panic!("should be rtp")
    };
    assert!(rtp.address().is_multicast());
    for (bad, needle) in [
        ("rtp://camera.example:5004", "IP address"),
        ("rtp://10.0.0.1", "port"),
        ("rtp://10.0.0.1:0", "port"),
        ("rtp://10.0.0.1:5004/stream", "path"),
        ("rtp://u:p@10.0.0.1:5004", "user"),
        ("rtp://10.0.0.1:5004?pt=8", "96 to 127"),
        ("rtp://10.0.0.1:5004?passthrough=maybe", "true or false"),
        ("rtp://10.0.0.1:5004?pt=96&pt=97", "pt"),
        ("rtp://10.0.0.1:5004?bitrate=1", "parameters"),
    ] {
        let message = error(bad);
        assert!(message.contains(needle), "{bad}: {message}");
    }
}
