//! What object keys the store accepts, beyond the S3 length limit s3s already enforces.

use s3s::{S3Result, s3_error};

/// Longest key S3 allows, in UTF-8 bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// Refuses keys that are empty, too long, contain NUL or have a `..` path segment.
pub fn validate_key(key: &str) -> S3Result<()> {
    if key.is_empty() {
        return Err(s3_error!(
            InvalidArgument,
            "The object key must not be empty."
        ));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(s3_error!(KeyTooLongError, "Your key is too long."));
    }
    if key.contains('\0') {
        return Err(s3_error!(
            InvalidArgument,
            "Object keys must not contain NUL characters."
        ));
    }
    if key.split('/').any(|segment| segment == "..") {
        return Err(s3_error!(
            InvalidArgument,
            "Object keys must not contain '..' path segments."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(validate_key("a/b..c/d.txt").is_ok());
        assert!(validate_key("..a").is_ok());
        for bad in ["", "a/../b", "..", "../x", "x/..", "a\0b"] {
            assert!(validate_key(bad).is_err(), "{bad:?}");
        }
        assert!(validate_key(&"k".repeat(1024)).is_ok());
        assert_eq!(
            *validate_key(&"k".repeat(1025)).unwrap_err().code(),
            s3s::S3ErrorCode::KeyTooLongError
        );
    }
}
