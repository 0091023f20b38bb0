//! `x-amz-copy-source-range` of UploadPartCopy: `bytes=first-last` within the source object;
//! a malformed value is `InvalidArgument`, one outside the object `InvalidRange`, both 400.

use s3s::{S3Result, s3_error};

/// Parses `x-amz-copy-source-range: bytes=first-last` against the source size.
pub(super) fn copy_range(range: Option<&str>, size: u64) -> S3Result<(u64, u64)> {
    let Some(range) = range else {
        return Ok((0, size));
    };
    let bad = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let spec = range.strip_prefix("bytes=").ok_or_else(bad)?;
    let (first, last) = spec.split_once('-').ok_or_else(bad)?;
    let first: u64 = first.trim().parse().map_err(|_| bad())?;
    let last: u64 = last.trim().parse().map_err(|_| bad())?;
    if first > last || last >= size {
        // S3 answers 400 here (not 416 as for a GET's Range).
        let mut e = s3_error!(
            InvalidRange,
            "The x-amz-copy-source-range value is not within the source object of size {size}"
        );
        e.set_status_code(http::StatusCode::BAD_REQUEST);
        return Err(e);
    }
    Ok((first, last - first + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_s3_reads_them() {
        assert_eq!(copy_range(None, 10).unwrap(), (0, 10));
        assert_eq!(copy_range(Some("bytes=2-5"), 10).unwrap(), (2, 4));
        for bad in [
            "0-2",
            "bytes=0",
            "bytes=hello-world",
            "bytes=0-bar",
            "bytes=hello-",
            "bytes=0-2,3-5",
        ] {
            let e = copy_range(Some(bad), 10).unwrap_err();
            assert_eq!(*e.code(), s3s::S3ErrorCode::InvalidArgument, "{bad}");
        }
        for out in ["bytes=0-10", "bytes=5-2"] {
            let e = copy_range(Some(out), 10).unwrap_err();
            assert_eq!(*e.code(), s3s::S3ErrorCode::InvalidRange, "{out}");
            assert_eq!(e.status_code(), Some(http::StatusCode::BAD_REQUEST));
        }
    }
}
