//! The few S3 XML answers the ACME state store reads (ListObjectsV2, ListBuckets, error
//! bodies), deserialized with quick-xml.

use serde::Deserialize;

use super::Listed;

/// One page of a ListObjectsV2 answer.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct ListPage {
    pub entries: Vec<Listed>,
    pub truncated: bool,
    pub next: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListBucketResult {
    #[serde(default)]
    contents: Vec<Contents>,
    #[serde(default)]
    is_truncated: bool,
    next_continuation_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Contents {
    key: String,
    #[serde(rename = "ETag", default)]
    etag: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListAllMyBucketsResult {
    #[serde(default)]
    buckets: Buckets,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Buckets {
    #[serde(default)]
    bucket: Vec<Bucket>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Bucket {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody {
    code: String,
}

/// The keys and ETags of a ListObjectsV2 answer; None when it is not one.
pub(super) fn parse_list(xml: &[u8]) -> Option<ListPage> {
    let page: ListBucketResult = quick_xml::de::from_reader(xml).ok()?;
    Some(ListPage {
        entries: page
            .contents
            .into_iter()
            .map(|c| Listed {
                key: c.key,
                etag: unquote(&c.etag),
            })
            .collect(),
        truncated: page.is_truncated,
        next: page.next_continuation_token,
    })
}

/// The bucket names of a ListBuckets answer; None when it is not one.
pub(super) fn bucket_names(xml: &[u8]) -> Option<Vec<String>> {
    let list: ListAllMyBucketsResult = quick_xml::de::from_reader(xml).ok()?;
    Some(list.buckets.bucket.into_iter().map(|b| b.name).collect())
}

/// The `<Code>` of an S3 error body.
pub(super) fn error_code(body: &[u8]) -> Option<String> {
    let error: ErrorBody = quick_xml::de::from_reader(body).ok()?;
    Some(error.code.trim().to_owned())
}

/// An ETag without its quotes or weakness mark.
pub(super) fn unquote(etag: &str) -> String {
    etag.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_page_is_parsed() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>edge-acme</Name><Prefix>certs/</Prefix><KeyCount>2</KeyCount>
<IsTruncated>true</IsTruncated><NextContinuationToken>abc&amp;d</NextContinuationToken>
<Contents><Key>certs/a.example.pem</Key><ETag>&quot;e1&quot;</ETag><Size>3</Size></Contents>
<Contents><Key>certs/b&amp;c.pem</Key><ETag>"e2"</ETag></Contents>
</ListBucketResult>"#;
        let page = parse_list(xml.as_bytes()).expect("a ListObjectsV2 answer");
        assert_eq!(
            page.entries,
            vec![
                Listed {
                    key: "certs/a.example.pem".into(),
                    etag: "e1".into()
                },
                Listed {
                    key: "certs/b&c.pem".into(),
                    etag: "e2".into()
                },
            ]
        );
        assert!(page.truncated);
        assert_eq!(page.next.as_deref(), Some("abc&d"));
        assert_eq!(
            parse_list(b"<ListBucketResult/>"),
            Some(ListPage::default())
        );
        assert_eq!(parse_list(b"not xml <"), None);
    }

    #[test]
    fn bucket_names_error_codes_and_etags() {
        let xml = br#"<ListAllMyBucketsResult><Owner><ID>x</ID></Owner><Buckets>
<Bucket><Name>a&amp;b</Name><CreationDate>2026-01-01T00:00:00Z</CreationDate></Bucket>
<Bucket><Name>edge-acme</Name></Bucket></Buckets></ListAllMyBucketsResult>"#;
        assert_eq!(
            bucket_names(xml),
            Some(vec!["a&b".to_owned(), "edge-acme".to_owned()])
        );
        assert_eq!(
            bucket_names(b"<ListAllMyBucketsResult><Buckets/></ListAllMyBucketsResult>"),
            Some(vec![])
        );
        assert_eq!(
            error_code(b"<Error><Code>NoSuchKey</Code><Message>m</Message></Error>").as_deref(),
            Some("NoSuchKey")
        );
        assert_eq!(error_code(b"\xff"), None);
        assert_eq!(unquote("\"abc\""), "abc");
        assert_eq!(unquote("W/\"abc\""), "abc");
    }
}
