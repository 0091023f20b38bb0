//! CORS through the edge in front of the embedded S3 store: the store answers
//! `Access-Control-Allow-Origin` by the request's `Origin`, the edge keeps one variant per
//! `Origin`, so no origin is ever served another's answer (or a response made without one).

use reqwest::Method;

use crate::common::s3::{S3cmd, origin_user};
use crate::common::{cache_status, client, start_edge};

const ALLOWED_A: &str = "https://a.example";
const ALLOWED_B: &str = "https://b.example";
const REFUSED: &str = "https://evil.example";

const RULES: &str = r#"<CORSConfiguration>
  <CORSRule>
    <AllowedOrigin>https://a.example</AllowedOrigin>
    <AllowedOrigin>https://b.example</AllowedOrigin>
    <AllowedMethod>GET</AllowedMethod>
    <AllowedMethod>HEAD</AllowedMethod>
    <AllowedHeader>x-requested-with</AllowedHeader>
    <ExposeHeader>ETag</ExposeHeader>
    <MaxAgeSeconds>600</MaxAgeSeconds>
  </CORSRule>
</CORSConfiguration>"#;

fn config(data: &std::path::Path) -> String {
    format!(
        "[pop]\nname = \"cors\"\n[listen]\nhttp = \"127.0.0.1:0\"\n[cache]\ndefault_ttl = \"1h\"\n\
         [origin]\nkind = \"embedded\"\ndata_dir = \"{}\"\n{}\n[[space]]\nname = \"fonts\"\n",
        data.join("origin").display(),
        origin_user()
    )
}

fn acao(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

fn vary(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_origin_gets_its_own_cors_answer_from_cache() {
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&config(dir.path())).await;
    let s3 = S3cmd::new(dir.path(), edge.origin_addr.unwrap());
    let file = dir.path().join("font.woff2");
    std::fs::write(&file, "not really a font").unwrap();
    s3.run(&[
        "put",
        "--acl-public",
        file.to_str().unwrap(),
        "s3://fonts/f/font.woff2",
    ]);
    s3.set_cors(dir.path(), "fonts", RULES);

    let c = client(&["fonts"], &[]);
    let port = edge.http_addr.unwrap().port();
    let url = format!("http://fonts.local.cdn.localhost:{port}/f/font.woff2");
    let get = |origin: Option<&'static str>| {
        let mut request = c.get(&url);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };

    // Filled without Origin first: the regression. The store says no `Vary` here, and this
    // answer (no ACAO) used to be served to the cross-origin requests after it.
    let cases = [
        (None, None),
        (Some(ALLOWED_A), Some(ALLOWED_A)),
        (Some(ALLOWED_B), Some(ALLOWED_B)),
        (Some(REFUSED), None),
    ];
    for round in ["miss", "hit"] {
        for (origin, expected) in cases {
            let r = get(origin).await.unwrap();
            assert_eq!(r.status(), 200);
            let status = cache_status(&r);
            if round == "miss" {
                assert_eq!(status, "cors; fwd=miss; stored", "{origin:?}");
            } else {
                assert!(status.starts_with("cors; hit;"), "{origin:?}: {status}");
            }
            assert_eq!(acao(&r).as_deref(), expected, "{round} for {origin:?}");
            assert_eq!(vary(&r).to_ascii_lowercase(), "origin", "{origin:?}");
            let credentials = r.headers().get("access-control-allow-credentials");
            assert_eq!(credentials.is_some(), expected.is_some(), "{origin:?}");
            assert_eq!(r.text().await.unwrap(), "not really a font");
        }
    }

    // HEAD and ranges are answered from the same variant.
    let r = c
        .head(&url)
        .header("origin", ALLOWED_B)
        .send()
        .await
        .unwrap();
    assert!(cache_status(&r).contains("hit"));
    assert_eq!(acao(&r).as_deref(), Some(ALLOWED_B));
    let r = c
        .get(&url)
        .header("origin", ALLOWED_A)
        .header("range", "bytes=0-2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert!(cache_status(&r).contains("hit"));
    assert_eq!(acao(&r).as_deref(), Some(ALLOWED_A));
    assert_eq!(r.text().await.unwrap(), "not");
    edge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_are_answered_per_origin() {
    let dir = tempfile::tempdir().unwrap();
    let edge = start_edge(&config(dir.path())).await;
    let s3 = S3cmd::new(dir.path(), edge.origin_addr.unwrap());
    let file = dir.path().join("data.json");
    std::fs::write(&file, "{}").unwrap();
    s3.run(&[
        "put",
        "--acl-public",
        file.to_str().unwrap(),
        "s3://fonts/data.json",
    ]);
    s3.set_cors(dir.path(), "fonts", RULES);

    let c = client(&["fonts"], &[]);
    let port = edge.http_addr.unwrap().port();
    let url = format!("http://fonts.local.cdn.localhost:{port}/data.json");
    let preflight = |origin: &'static str, headers: &'static str| {
        c.request(Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", headers)
            .send()
    };
    for origin in [ALLOWED_A, ALLOWED_B, ALLOWED_A] {
        let r = preflight(origin, "X-Requested-With").await.unwrap();
        assert_eq!(r.status(), 200, "{origin}");
        assert_eq!(acao(&r).as_deref(), Some(origin));
        let h = r.headers();
        assert_eq!(h["access-control-allow-methods"], "GET, HEAD");
        assert_eq!(h["access-control-allow-headers"], "x-requested-with");
        assert_eq!(h["access-control-max-age"], "600");
        assert!(vary(&r).contains("Origin"));
        assert!(cache_status(&r).contains("fwd=bypass"));
    }
    // Refused origins and headers the rules do not allow: 403, no ACAO.
    let r = preflight(REFUSED, "X-Requested-With").await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(acao(&r), None);
    let r = preflight(ALLOWED_A, "Authorization").await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(acao(&r), None);
    edge.stop().await;
}
