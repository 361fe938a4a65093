//! One file per page (or small family of pages), each with its view struct and template.

pub mod authorize;
pub mod find;
pub mod launch;
pub mod moves;
pub mod privacy;
pub mod record;
pub mod residents;
pub mod sign_in;
pub mod systems;
pub mod training;

/// A form field's error, for the NHS.UK error summary and the field itself.
pub struct FieldError {
    /// The id of the field (the summary links to it).
    pub field: &'static str,
    pub message: String,
}

/// A choice in a radios or select list.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub checked: bool,
}

/// Formats µs since the epoch as a date and time for people (`2 December 2026, 14:05`), in
/// UTC (the service's clock; the demo and the tests run in UTC).
pub fn when(micros: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(micros / 1_000_000) else {
        return String::new();
    };
    let format = time::macros::format_description!(
        "[day padding:none] [month repr:long] [year], [hour]:[minute]"
    );
    t.format(&format).unwrap_or_default()
}
