//! NHS numbers: ten digits with a Modulus 11 check digit.

use std::fmt;

/// The FHIR identifier system for NHS numbers.
pub const NHS_NUMBER_SYSTEM: &str = "https://fhir.nhs.uk/Id/nhs-number";

/// A valid NHS number. Construct it with [`NhsNumber::parse`]; holding one proves the check digit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NhsNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NhsNumberError {
    #[error("an NHS number has exactly 10 digits")]
    WrongLength,
    #[error("an NHS number contains only digits (and optional spaces)")]
    NotDigits,
    #[error("the NHS number's check digit is wrong")]
    CheckDigit,
    #[error("0000000000 is not an NHS number")]
    AllZeros,
}

impl NhsNumber {
    /// Accepts `9434765919` or `943 476 5919` (spaces anywhere are ignored).
    pub fn parse(input: &str) -> Result<Self, NhsNumberError> {
        let compact: String = input.chars().filter(|c| *c != ' ').collect();
        if !compact.chars().all(|c| c.is_ascii_digit()) {
            return Err(NhsNumberError::NotDigits);
        }
        if compact.len() != 10 {
            return Err(NhsNumberError::WrongLength);
        }
        let digits: Vec<u32> = compact.bytes().map(|b| u32::from(b - b'0')).collect();
        if digits.iter().all(|d| *d == 0) {
            return Err(NhsNumberError::AllZeros);
        }
        match check_digit(&digits[..9]) {
            Some(c) if c == digits[9] => Ok(NhsNumber(compact)),
            _ => Err(NhsNumberError::CheckDigit),
        }
    }

    /// The ten digits without spaces.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The display form `943 476 5919`.
    pub fn formatted(&self) -> String {
        format!("{} {} {}", &self.0[..3], &self.0[3..6], &self.0[6..])
    }

    /// Numbers starting 999 are reserved for testing and training.
    pub fn is_test_range(&self) -> bool {
        self.0.starts_with("999")
    }
}

/// The Modulus 11 check digit of the first nine digits, or `None` when the number cannot be valid.
pub fn check_digit(first_nine: &[u32]) -> Option<u32> {
    let sum: u32 = first_nine
        .iter()
        .zip((2..=10).rev())
        .map(|(d, w)| d * w)
        .sum();
    match 11 - (sum % 11) {
        11 => Some(0),
        10 => None,
        c => Some(c),
    }
}

// Never print the number itself in debug output: it lands in logs.
impl fmt::Debug for NhsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NhsNumber(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_published_example_is_valid_and_formats_3_3_4() {
        let n = NhsNumber::parse("943 476 5919").unwrap();
        assert_eq!(n.as_str(), "9434765919");
        assert_eq!(n.formatted(), "943 476 5919");
        assert!(!n.is_test_range());
    }

    #[test]
    fn test_range_numbers_validate() {
        assert!(NhsNumber::parse("9990000018").unwrap().is_test_range());
    }

    #[test]
    fn wrong_check_digit_length_and_characters_are_rejected() {
        assert_eq!(
            NhsNumber::parse("9434765918"),
            Err(NhsNumberError::CheckDigit)
        );
        assert_eq!(
            NhsNumber::parse("943476591"),
            Err(NhsNumberError::WrongLength)
        );
        assert_eq!(
            NhsNumber::parse("94347659A9"),
            Err(NhsNumberError::NotDigits)
        );
        assert_eq!(
            NhsNumber::parse("0000000000"),
            Err(NhsNumberError::AllZeros)
        );
    }

    #[test]
    fn a_remainder_of_ten_is_never_valid() {
        // 999000000x: weighted sum of the first nine digits leaves check 10.
        let digits = [9, 9, 9, 0, 0, 0, 0, 0, 0];
        assert_eq!(check_digit(&digits), None);
        for last in 0..10 {
            assert!(NhsNumber::parse(&format!("999000000{last}")).is_err());
        }
    }

    #[test]
    fn debug_output_hides_the_number() {
        let n = NhsNumber::parse("9990000018").unwrap();
        assert!(!format!("{n:?}").contains("999"));
    }

    proptest! {
        #[test]
        fn every_nine_digit_prefix_has_at_most_one_valid_completion(prefix in proptest::collection::vec(0u32..10, 9)) {
            let s: String = prefix.iter().map(|d| char::from(b'0' + *d as u8)).collect();
            let valid: Vec<u32> = (0..10).filter(|d| NhsNumber::parse(&format!("{s}{d}")).is_ok()).collect();
            prop_assert!(valid.len() <= 1);
            if let Some(c) = check_digit(&prefix)
                && (prefix.iter().any(|d| *d != 0) || c != 0)
            {
                prop_assert_eq!(valid, vec![c]);
            }
        }
    }
}
