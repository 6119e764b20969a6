//! Untrusted text (values from DMM, response bodies, AWS messages) as it may appear in an error
//! message, a DMM status or a log line.

/// Longest excerpt of an untrusted value quoted in a message about it.
pub const MAX_SHOWN_CHARS: usize = 120;

/// `value` as it may be quoted in a message: at most [`MAX_SHOWN_CHARS`] characters, everything
/// outside printable ASCII escaped, so a 10 KB field or a bidi override cannot distort what the
/// operator reads.
pub fn shown(value: &str) -> String {
    excerpt(value, MAX_SHOWN_CHARS)
}

/// Like [`shown`], with a longer cut for text that is diagnosed rather than quoted (a response
/// body): enough to see the cause, never a whole page.
pub fn excerpt(value: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(value.len().min(max_chars + 8));
    for (index, c) in value.chars().enumerate() {
        if index == max_chars {
            out.push('…');
            break;
        }
        if c == ' ' || c.is_ascii_graphic() {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_keeps_short_printable_values() {
        assert_eq!(shown("arn:aws:s3:::bucket"), "arn:aws:s3:::bucket");
        assert_eq!(shown("a b"), "a b");
    }

    #[test]
    fn shown_escapes_control_and_non_ascii_characters() {
        assert_eq!(shown("a\nb"), "a\\nb");
        assert_eq!(shown("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(shown("é"), "\\u{e9}");
    }

    #[test]
    fn shown_truncates_long_values() {
        let long = "x".repeat(10_000);
        let out = shown(&long);
        assert_eq!(out.chars().count(), MAX_SHOWN_CHARS + 1);
        assert!(out.ends_with('…'));
    }

    #[test]
    fn excerpts_cut_at_their_own_length() {
        let body = "y".repeat(500);
        assert_eq!(excerpt(&body, 300).chars().count(), 301);
        assert_eq!(excerpt("short\r\n", 300), "short\\r\\n");
    }
}
