//! Text normalisation shared by indexing and querying, so both sides agree.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Lower case with accents removed: `"Zoë O'Brien"` → `"zoe o'brien"`.
pub fn normalize(s: &str) -> String {
    s.nfd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accents_and_case_are_folded() {
        assert_eq!(normalize("Zoë ÅNGSTRÖM"), "zoe angstrom");
    }
}
