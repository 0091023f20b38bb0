//! PutObject bodies sent with `Transfer-Encoding: chunked` and no length (as SDKs send them):
//! stored whole, whether the client signed `Transfer-Encoding` (botocore before 1.34 does) or
//! left it out (aws-sigv4, newer botocore).

use bytes::Bytes;

use crate::common::{ALICE, Server, send, sign};

async fn chunked_put(server: &Server, path: &str, body: Bytes, sign_te: bool) -> u16 {
    let url = server.url(path);
    let headers = [("transfer-encoding".to_owned(), "chunked".to_owned())];
    let hash = sign::sha256_hex(&body);
    let signed = if sign_te {
        sign::sign_every_header(ALICE, "PUT", &url, &headers, &hash)
    } else {
        sign::sign_headers(ALICE, "PUT", &url, &headers, &hash)
    };
    assert_eq!(
        signed
            .iter()
            .find(|(k, _)| k == "authorization")
            .is_some_and(|(_, v)| v.contains("transfer-encoding")),
        sign_te
    );
    let resp = send(server.addr, "PUT", path, &signed, body).await;
    assert!(resp.status == 200 || resp.status == 403, "{}", resp.text());
    resp.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_puts_are_stored_with_transfer_encoding_signed_or_not() {
    let server = Server::start().await;
    assert_eq!(
        server
            .request(Some(ALICE), "PUT", "/tebucket", &[], "")
            .await
            .status,
        200
    );
    let small = Bytes::from_static(b"bar");
    // Past what the store holds in memory: spooled to a temporary file first.
    let large = Bytes::from(
        (0..2 * 1024 * 1024 + 17)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<_>>(),
    );
    for (key, body) in [("small", &small), ("large", &large)] {
        for sign_te in [false, true] {
            let path = format!("/tebucket/{key}-{sign_te}");
            assert_eq!(
                chunked_put(&server, &path, body.clone(), sign_te).await,
                200,
                "{path}"
            );
            let got = server.request(Some(ALICE), "GET", &path, &[], "").await;
            assert_eq!(got.status, 200);
            assert!(got.body == *body, "{path} reads back as written");
        }
    }
}
