use std::fmt;

/// The DMM API key. It has no `Display` and a redacting `Debug`, so it cannot end up in a log
/// line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into().trim().to_owned())
    }

    /// The raw key, only for the `x-api-key` header.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let key = ApiKey::new(" s3cr3t-value\n");
        assert_eq!(key.expose(), "s3cr3t-value");
        let shown = format!("{key:?} {:?}", Some(&key));
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
}
