//! Multipart uploads with raw signed requests: part sizes, re-sent parts, completion errors,
//! UploadPartCopy ranges, listings of uploads and parts.

use crate::api::put;
use crate::common::{ALICE, Server, data, md5_hex, xml_field, xml_fields};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_details() {
    let server = Server::start().await;
    server.store.ensure_bucket("mpu", ALICE.id).unwrap();
    let part1 = data(5 * 1024 * 1024, 1);
    let part2 = b"tail".to_vec();
    put(&server, "/mpu/source", &[], b"0123456789").await;

    let resp = server
        .request(
            Some(ALICE),
            "POST",
            "/mpu/obj?uploads",
            &[("content-type", "video/mp4")],
            "",
        )
        .await;
    let upload = xml_field(&resp.text(), "UploadId").unwrap();
    let resp = server
        .request(
            Some(ALICE),
            "PUT",
            &format!("/mpu/obj?partNumber=1&uploadId={upload}"),
            &[],
            part1.clone(),
        )
        .await;
    assert_eq!(resp.status, 200);
    let etag1 = resp.header("etag").unwrap().to_owned();
    let resp = server
        .request(
            Some(ALICE),
            "PUT",
            &format!("/mpu/obj?partNumber=2&uploadId={upload}"),
            &[],
            part2.clone(),
        )
        .await;
    let etag2 = resp.header("etag").unwrap().to_owned();
    let resp = server
        .request(
            Some(ALICE),
            "PUT",
            &format!("/mpu/obj?partNumber=3&uploadId={upload}"),
            &[
                ("x-amz-copy-source", "/mpu/source"),
                ("x-amz-copy-source-range", "bytes=2-5"),
            ],
            "",
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let etag3 = xml_field(&resp.text(), "ETag")
        .unwrap()
        .replace("&quot;", "\"");
    assert_eq!(etag3, format!("\"{}\"", md5_hex(b"2345")));

    let text = server
        .request(
            Some(ALICE),
            "GET",
            &format!("/mpu/obj?uploadId={upload}&max-parts=2"),
            &[],
            "",
        )
        .await
        .text();
    assert_eq!(xml_fields(&text, "PartNumber"), ["1", "2"]);
    assert_eq!(xml_field(&text, "IsTruncated").as_deref(), Some("true"));
    let text = server
        .request(Some(ALICE), "GET", "/mpu?uploads", &[], "")
        .await
        .text();
    assert!(text.contains(&upload), "{text}");

    // A small middle part is refused; out-of-order lists too.
    let complete = |parts: &[(u32, &str)]| {
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (n, tag) in parts {
            xml.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{tag}</ETag></Part>"
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        xml
    };
    let path = format!("/mpu/obj?uploadId={upload}");
    let resp = server
        .request(
            Some(ALICE),
            "POST",
            &path,
            &[],
            complete(&[(1, &etag1), (2, &etag2), (3, &etag3)]),
        )
        .await;
    assert_eq!(resp.code(), "EntityTooSmall");
    let resp = server
        .request(
            Some(ALICE),
            "POST",
            &path,
            &[],
            complete(&[(3, &etag3), (1, &etag1)]),
        )
        .await;
    assert_eq!(resp.code(), "InvalidPartOrder");
    let resp = server
        .request(
            Some(ALICE),
            "POST",
            &path,
            &[],
            complete(&[(1, &etag1), (3, "\"bad\"")]),
        )
        .await;
    assert_eq!(resp.code(), "InvalidPart");
    let resp = server
        .request(
            Some(ALICE),
            "POST",
            &path,
            &[],
            complete(&[(1, &etag1), (3, &etag3)]),
        )
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let mut raw = Vec::new();
    for tag in [&etag1, &etag3] {
        raw.extend(hex::decode(tag.trim_matches('"')).unwrap());
    }
    let expected_etag = format!("\"{}-2\"", md5_hex(&raw));
    let got = server
        .request(Some(ALICE), "GET", "/mpu/obj", &[], "")
        .await;
    assert_eq!(got.header("etag"), Some(expected_etag.as_str()));
    assert_eq!(got.header("content-type"), Some("video/mp4"));
    let mut whole = part1.clone();
    whole.extend_from_slice(b"2345");
    assert!(got.body[..] == whole[..]);
    let resp = server
        .request(
            Some(ALICE),
            "GET",
            "/mpu/obj",
            &[("range", "bytes=5242878-5242881")],
            "",
        )
        .await;
    assert_eq!(&resp.body[..], &whole[5_242_878..5_242_882]);
    assert_eq!(
        server
            .request(Some(ALICE), "POST", &path, &[], complete(&[(1, &etag1)]))
            .await
            .code(),
        "NoSuchUpload"
    );

    // Abort removes the upload and its parts.
    let resp = server
        .request(Some(ALICE), "POST", "/mpu/gone?uploads", &[], "")
        .await;
    let upload = xml_field(&resp.text(), "UploadId").unwrap();
    server
        .request(
            Some(ALICE),
            "PUT",
            &format!("/mpu/gone?partNumber=1&uploadId={upload}"),
            &[],
            "p",
        )
        .await;
    assert_eq!(
        server
            .request(
                Some(ALICE),
                "DELETE",
                &format!("/mpu/gone?uploadId={upload}"),
                &[],
                ""
            )
            .await
            .status,
        204
    );
    assert_eq!(
        server
            .request(
                Some(ALICE),
                "GET",
                &format!("/mpu/gone?uploadId={upload}"),
                &[],
                ""
            )
            .await
            .status,
        404
    );
    let blobs: usize = std::fs::read_dir(server.dir.path().join("blobs"))
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(blobs, 2, "only the source and the completed object remain");
}
