//! Pipelines from gst-launch descriptions, their named elements, and the errors on their bus: the
//! one place this crate parses a description, so every pipeline reports a missing plugin the same
//! way ([`PipelineError::MissingElement`]).

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::error::PipelineError;

/// Parses `description` into a pipeline (state NULL).
pub(crate) fn launch(description: &str) -> Result<gst::Pipeline, PipelineError> {
    crate::init()?;
    let mut context = gst::ParseContext::new();
    gst::parse::launch_full(
        description,
        Some(&mut context),
        gst::ParseFlags::FATAL_ERRORS,
    )
    .map_err(|e| match context.missing_elements().first() {
        Some(missing) => PipelineError::MissingElement(missing.clone()),
        None => PipelineError::Build(e.to_string()),
    })?
    .downcast::<gst::Pipeline>()
    .map_err(|_| PipelineError::Build("the description did not make a pipeline".to_owned()))
}

/// The element named `name` in `pipeline`, as a `T` (an appsrc, an appsink, …).
pub(crate) fn element<T: IsA<gst::Element>>(
    pipeline: &gst::Pipeline,
    name: &str,
) -> Result<T, PipelineError> {
    pipeline
        .by_name(name)
        .and_then(|e| e.downcast::<T>().ok())
        .ok_or_else(|| PipelineError::Build(format!("no element named '{name}' of the right kind")))
}

/// The first error on `pipeline`'s bus, as `element: message` (the element by its factory name),
/// if there is one. Never waits; reads a bounded number of messages.
pub(crate) fn bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    for _ in 0..64 {
        let message = bus.pop()?;
        if let gst::MessageView::Error(error) = message.view() {
            let element = error
                .src()
                .map(|src| {
                    src.downcast_ref::<gst::Element>()
                        .and_then(|element| element.factory())
                        .map(|factory| factory.name().to_string())
                        .unwrap_or_else(|| src.name().to_string())
                })
                .unwrap_or_else(|| "pipeline".to_owned());
            return Some(format!("{element}: {}", error.error().message()));
        }
    }
    None
}
