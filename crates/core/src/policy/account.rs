//! AWS account ids, checked once where they enter (a custom field, an ARN, the configuration,
//! the function's own ARN).

use std::fmt;

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(String);

impl AccountId {
    /// `value` if it is 12 ASCII digits.
    pub fn parse(value: &str) -> Option<Self> {
        (value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_twelve_ascii_digits_are_an_account() {
        assert_eq!(
            AccountId::parse("123456789012").map(AccountId::into_string),
            Some("123456789012".to_owned())
        );
        for bad in [
            "",
            "12345678901",
            "1234567890123",
            "12345678901a",
            "１２３４５６７８９０１２",
            " 23456789012",
        ] {
            assert_eq!(AccountId::parse(bad), None, "{bad:?}");
        }
    }
}
