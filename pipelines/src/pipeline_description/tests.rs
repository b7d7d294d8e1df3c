use super::*;

fn source(s: &str) -> CameraSource {
    CameraSource::parse(s).expect("valid source")
}

fn factory_name(pipeline: &gst::Pipeline, name: &str) -> String {
    pipeline
        .by_name(name)
        .and_then(|e| e.factory())
        .map(|f| f.name().to_string())
        .unwrap_or_else(|| panic!("no element named {name}"))
}

const TAIL: &str = "h264parse ! rtph264pay name=pay pt=96 mtu=1200 config-interval=-1 \
                    aggregate-mode=zero-latency ! appsink name=sink emit-signals=false sync=false \
                    max-buffers=64 drop=true enable-last-sample=false";

#[test]
fn test_description_encodes_the_pattern_with_x264() {
    let text = describe(&source(
        "test://ball?width=320&height=240&fps=15&gop=300&bitrate=500",
    ));
    assert_eq!(
        text,
        format!(
            "videotestsrc name=src is-live=true pattern=ball ! \
             video/x-raw,width=320,height=240,framerate=15/1 ! \
             x264enc name=enc tune=zerolatency speed-preset=ultrafast key-int-max=300 \
             bitrate=500 ! video/x-h264,profile=constrained-baseline ! {TAIL}"
        )
    );
}

#[test]
fn v4l2_description_is_built_and_parses_into_elements() {
    let v4l2 = source("v4l2:///dev/video7");
    assert_eq!(
        describe(&v4l2),
        format!(
            "v4l2src name=src device=/dev/video7 ! videoconvert ! \
             x264enc name=enc tune=zerolatency speed-preset=ultrafast key-int-max=30 \
             bitrate=2000 ! video/x-h264,profile=constrained-baseline ! {TAIL}"
        )
    );
    // Parsed into elements but never set to PLAYING: no device is needed.
    let built = parse(&v4l2).expect("v4l2 pipeline parses");
    assert_eq!(factory_name(&built.pipeline, SOURCE), "v4l2src");
    assert_eq!(factory_name(&built.pipeline, ENCODER), "x264enc");
    assert_eq!(factory_name(&built.pipeline, PAYLOADER), "rtph264pay");
    let src = built.pipeline.by_name(SOURCE).expect("src");
    assert_eq!(src.property::<String>("device"), "/dev/video7");
    let encoder = built.pipeline.by_name(ENCODER).expect("enc");
    assert_eq!(encoder.property::<u32>("key-int-max"), 30);
    assert!(!built.appsink.property::<bool>("sync"));
    assert!(built.appsink.property::<bool>("drop"));
    assert_eq!(built.appsink.property::<u32>("max-buffers"), 64);
}

#[test]
fn rtsp_description_has_no_location_and_rtspsrc_gets_credentials_as_properties() {
    let rtsp = source("rtsp://viewer:n0t-in-logs@127.0.0.1:8554/cam?transport=udp");
    let text = describe(&rtsp);
    assert_eq!(
        text,
        "rtspsrc name=src latency=0 protocols=udp  appsink name=sink emit-signals=false \
         sync=false max-buffers=64 drop=true enable-last-sample=false"
    );
    let built = parse(&rtsp).expect("rtsp pipeline parses");
    let src = built.pipeline.by_name(SOURCE).expect("rtspsrc");
    assert_eq!(
        src.property::<Option<String>>("location").as_deref(),
        Some("rtsp://127.0.0.1:8554/cam")
    );
    assert_eq!(
        src.property::<Option<String>>("user-id").as_deref(),
        Some("viewer")
    );
    assert_eq!(
        src.property::<Option<String>>("user-pw").as_deref(),
        Some("n0t-in-logs")
    );
    assert_eq!(src.property::<u32>("latency"), 0);
    // The payloader comes with the camera's video pad (H.264 or H.265); the same as every other
    // pipeline's, which the test and v4l2 descriptions show.
    assert!(built.pipeline.by_name(PAYLOADER).is_none());
}

#[test]
fn every_accepted_test_pattern_is_a_videotestsrc_pattern() {
    crate::init().expect("GStreamer");
    let src = gst::ElementFactory::make("videotestsrc")
        .build()
        .expect("videotestsrc");
    let pspec = src.find_property("pattern").expect("pattern property");
    let class = gst::glib::EnumClass::with_type(pspec.value_type()).expect("an enum");
    for pattern in crate::TEST_PATTERNS {
        assert!(
            class.value_by_nick(pattern).is_some(),
            "videotestsrc has no pattern {pattern}"
        );
    }
}
