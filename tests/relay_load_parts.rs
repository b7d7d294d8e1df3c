//! The unit tests of the relay_load benchmark's parts. A `harness = false` bench never runs its
//! own `#[test]`s, so its modules are compiled here as well, where they do run.

#[path = "../benches/relay_load/latency_histogram.rs"]
mod latency_histogram;
#[path = "../benches/relay_load/synthetic_camera.rs"]
#[allow(dead_code)]
mod synthetic_camera;
#[path = "../benches/relay_load/viewer_swarm.rs"]
mod viewer_swarm;

/// The camera's packets carry a stamp a receiver can read, and a burst per frame with the
/// marker on its last packet: what the benchmark's latency figures rest on.
#[test]
fn the_synthetic_camera_sends_stamped_frames() {
    let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    receiver
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let camera = synthetic_camera::SyntheticCamera::start(receiver.local_addr().unwrap());
    let mut buffer = [0u8; 2048];
    let mut markers = 0;
    let mut stamped = 0;
    let mut keyframe_starts = 0;
    for _ in 0..200 {
        let length = receiver.recv(&mut buffer).expect("a packet within 2 s");
        assert!(length <= 12 + synthetic_camera::MAX_PAYLOAD);
        let payload = &buffer[12..length];
        let stamp = synthetic_camera::stamp_of(payload).expect("stamped");
        assert!(stamp <= synthetic_camera::monotonic_ns());
        stamped += 1;
        markers += usize::from(buffer[1] & 0x80 != 0);
        keyframe_starts += usize::from(payload[0] & 0x1f == 7);
    }
    drop(camera);
    assert_eq!(stamped, 200);
    assert!(markers >= 5, "frames end with a marker: {markers}");
    assert!(keyframe_starts >= 1, "a keyframe starts with an SPS");
}
