//! GStreamer's own debug log (what `GST_DEBUG` asks for) handed to `tracing`, instead of
//! GStreamer's default printer on stderr: the daemon's log then has one format throughout (the
//! journal's priority prefix, JSON, the `STRAJA_LOG` filter), and GStreamer's errors and warnings
//! reach the journal at their own priority. Levels: ERROR → error, WARNING → warn, FIXME and
//! INFO → info, DEBUG → debug, LOG and finer → trace; the events' target is `gstreamer`, with the
//! debug category (`gst_category`) and the object, element or pad, when there is one
//! (`gst_object`) as fields.

use gstreamer as gst;
use gstreamer::DebugLevel;

/// Replaces GStreamer's default log printer by one that emits `tracing` events. Once per
/// process, after the subscriber is set up; a GStreamer that cannot start is left as it is.
pub fn route_debug_log_to_tracing() {
    if gst::init().is_err() {
        return;
    }
    gst::log::remove_default_log_function();
    gst::log::add_log_function(
        |category, level, _file, _function, _line, object, message| {
            let Some(text) = message.get() else {
                return;
            };
            let gst_category = category.name();
            let gst_object = object.map(|o| o.to_string());
            let gst_object = gst_object.as_deref();
            match level {
                DebugLevel::Error => {
                    tracing::error!(target: "gstreamer", gst_category, gst_object, "{text}")
                }
                DebugLevel::Warning => {
                    tracing::warn!(target: "gstreamer", gst_category, gst_object, "{text}")
                }
                DebugLevel::Fixme | DebugLevel::Info => {
                    tracing::info!(target: "gstreamer", gst_category, gst_object, "{text}")
                }
                DebugLevel::Debug => {
                    tracing::debug!(target: "gstreamer", gst_category, gst_object, "{text}")
                }
                _ => tracing::trace!(target: "gstreamer", gst_category, gst_object, "{text}"),
            }
        },
    );
}
