use super::common::Ctx;
use super::{Event, MapError, Mapped};

pub(crate) fn map(_c: &Ctx<'_>, event: Event) -> Result<Mapped, MapError> {
    Err(MapError::UnsupportedMessage { code: event.as_str().into(), trigger: String::new() })
}
