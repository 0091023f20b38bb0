//! The dashboard in a real browser: headless Chromium signs in with a token, sees the fleet
//! and charts drawn from real traffic, creates a space through the form (an error shown
//! next to its field first), an object is fetched through that space, a purge through
//! the form reaches the PoP, and a key is made and revoked. A screenshot of the overview is saved for people to look at.

use std::path::Path;

use serde_json::json;

use super::cdp::Page;
use super::chromium::CHROMIUM;
use crate::common::s3::{S3cmd, origin_user};
use crate::common::{cache_status, client, start_edge};

const TOKEN: &str = "dashboard-admin-token-0123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_signs_in_watches_traffic_creates_a_space_and_purges_from_the_dashboard() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "Chromium is missing at {CHROMIUM}"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[pop]\nname = \"dash\"\n[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [cache]\ndefault_ttl = \"1h\"\n[origin]\nkind = \"embedded\"\ndata_dir = \"{}\"\n{}\
         [[admin.tokens]]\nname = \"ops\"\ntoken = \"{TOKEN}\"\n[[space]]\nname = \"assets\"\n",
        dir.path().join("origin").display(),
        origin_user()
    );
    let edge = start_edge(&config).await;
    let admin = format!("http://{}", edge.admin_addr.unwrap());
    let port = edge.http_addr.unwrap().port();
    let s3 = S3cmd::new(dir.path(), edge.origin_addr.unwrap());
    let put = |bucket: &str, name: &str, body: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, body).unwrap();
        s3.run(&[
            "put",
            "--acl-public",
            file.to_str().unwrap(),
            &format!("s3://{bucket}/{name}"),
        ]);
    };
    // Traffic for the charts: a miss and hits.
    put("assets", "logo.txt", "the logo");
    let c = client(&["assets", "photos"], &[]);
    for _ in 0..5 {
        let r = c
            .get(format!("http://assets.local.cdn.localhost:{port}/logo.txt"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Not through an edge hostname.
    let r = c
        .get(format!("http://assets.local.cdn.localhost:{port}/"))
        .send()
        .await
        .unwrap();
    assert!(!r.text().await.unwrap().contains("Sign in"));

    let mut page = Page::open(&format!("{admin}/"), dir.path()).await;
    page.wait_for(
        "document.querySelector('#sign-in-form')",
        "the sign-in form",
    )
    .await;
    // A wrong token is refused, the right one signs in.
    page.eval("type('Token', 'not-the-token'); press('Sign in')")
        .await;
    page.wait_for(
        "document.querySelector('[data-error=token]').textContent.includes('not valid')",
        "the refusal of a wrong token",
    )
    .await;
    page.eval(&format!("type('Token', '{TOKEN}'); press('Sign in')"))
        .await;
    page.wait_for(
        "document.body.dataset.loaded === 'overview' && document.querySelector('#charts').dataset.drawn === 'true'",
        "the overview with charts drawn from traffic",
    )
    .await;
    let overview = page
        .eval(
            "({ points: document.querySelectorAll('#charts circle').length,
                charts: [...document.querySelectorAll('#charts figcaption')].map((c) => c.textContent),
                fleet: [...document.querySelectorAll('#fleet tbody tr')].map((r) => r.textContent),
                local: performance.getEntriesByType('resource').every((e) => e.name.startsWith(location.origin)) })",
        )
        .await;
    assert!(overview["points"].as_u64().unwrap() >= 4, "{overview}");
    let this_pop = overview["fleet"][0].as_str().unwrap();
    assert!(
        this_pop.starts_with(&format!("dash{admin}up")),
        "{overview}"
    );
    assert_eq!(
        overview["local"],
        json!(true),
        "nothing leaves the admin origin"
    );
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-overview.png");
    page.screenshot(&shot).await;
    eprintln!("overview: {overview}\nscreenshot: {}", shot.display());

    // A space through the form: a bad TTL is shown next to its field, then a good one.
    page.eval("press('Spaces')").await;
    page.wait_for("document.body.dataset.loaded === 'spaces'", "the spaces")
        .await;
    page.eval("type('Name', 'photos'); type('TTL', 'soon'); press('Create')")
        .await;
    page.wait_for(
        "document.querySelector('#space-form [data-error=ttl]').textContent.startsWith('ttl:')",
        "the TTL error next to the TTL field",
    )
    .await;
    page.eval("type('TTL', '10m'); press('Create')").await;
    page.wait_for(
        "[...document.querySelectorAll('#space-list tbody tr')].some((r) => r.textContent.startsWith('photos10m'))",
        "the new space in the list",
    )
    .await;
    // An edit changes only what was changed.
    page.eval("press('Edit'); type('TTL', '20m'); press('Save')")
        .await;
    page.wait_for(
        "[...document.querySelectorAll('#space-list tbody tr')].some((r) => r.textContent.startsWith('photos20m'))",
        "the edited space in the list",
    )
    .await;
    put("photos", "a.txt", "a photo");
    let photo = format!("http://photos.local.cdn.localhost:{port}/a.txt");
    for expected in ["miss", "hit"] {
        let r = c.get(&photo).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let status = cache_status(&r);
        assert_eq!(r.text().await.unwrap(), "a photo");
        assert!(status.contains(expected), "{status}");
    }

    // A purge through the form: each PoP's answer is shown, and the object is fetched again.
    page.eval("press('Purge')").await;
    page.wait_for("document.body.dataset.loaded === 'purge'", "the purge form")
        .await;
    page.eval("field('Space').value = 'photos'; type('Paths', 'a.txt'); press('Purge', document.querySelector('#purge-form'))")
        .await;
    page.wait_for(
        "document.querySelector('#purge-result').dataset.done === 'true'",
        "the purge result",
    )
    .await;
    let result = page
        .eval("[...document.querySelectorAll('#purge-result tbody tr')].map((r) => r.textContent)")
        .await;
    assert_eq!(result, json!(["dashdone1"]), "each PoP's answer");
    let r = c.get(&photo).send().await.unwrap();
    assert!(cache_status(&r).contains("miss"), "{}", cache_status(&r));

    // A key limited to the new space's bucket: made through the form (its secret shown
    // once), then revoked; the list follows.
    page.eval("press('Keys')").await;
    page.wait_for("document.body.dataset.loaded === 'keys'", "the keys")
        .await;
    page.eval("type('Name', 'ci'); type('Bucket', 'photos'); field('Access').value = 'read'; press('Create', document.querySelector('#key-form'))")
        .await;
    page.wait_for(
        "document.querySelector('#key-secret-value').textContent.length === 40",
        "the new key's secret",
    )
    .await;
    page.wait_for(
        "document.querySelectorAll('#key-list tbody tr').length === 1",
        "the new key in the list",
    )
    .await;
    page.eval("press('Revoke'); press('Confirm revoke')").await;
    page.wait_for(
        "document.querySelectorAll('#key-list tbody tr').length === 0 && document.querySelector('#key-status').textContent.includes('revoked')",
        "the key revoked",
    )
    .await;
    let (_, keys) = {
        let r = reqwest::Client::new()
            .get(format!("{admin}/v1/keys"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<serde_json::Value>().await.unwrap())
    };
    assert_eq!(keys["keys"], json!([]), "revoked through the page");

    // The purge shows on the overview.
    page.eval("press('Overview')").await;
    page.wait_for(
        "[...document.querySelectorAll('#purges tbody tr')].some((r) => r.textContent.includes('photos'))",
        "the purge among recent purges",
    )
    .await;
    // A narrow window (a phone): the layout folds, nothing scrolls sideways.
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 400, "height": 800, "deviceScaleFactor": 1, "mobile": true}),
    )
    .await;
    for tab in ["Overview", "Spaces", "Purge"] {
        page.eval(&format!("press('{tab}')")).await;
        page.wait_for(
            "document.documentElement.scrollWidth <= window.innerWidth",
            &format!("the {tab} tab fitting 400 px"),
        )
        .await;
    }
    page.close().await;
    edge.stop().await;
}
