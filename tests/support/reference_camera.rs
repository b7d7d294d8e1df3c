//! The reference camera of the benchmarks: 720p30 H.264 at 2 Mbit/s with a 1 s GOP, the class of
//! stream a city IP camera sends.

use straja_pipelines::FakeCameraOptions;

/// 1280×720, 30 fps, GOP 30 frames (1 s), 2000 kbit/s.
pub fn options() -> FakeCameraOptions {
    FakeCameraOptions {
        width: 1280,
        height: 720,
        fps: 30,
        gop_frames: 30,
        bitrate_kbps: 2000,
        ..Default::default()
    }
}
