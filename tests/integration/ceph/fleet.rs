//! Three PoPs behind a shield in front of RGW: however many clients ask, each object is
//! fetched from the gateway once (counted by the gateway itself), and a purge after an
//! overwrite goes through the shield to RGW once more.

use super::{config, purge, space, url};
use crate::common::ceph::{Gateway, cluster};
use crate::common::{cache_status, client, start_edge};

const OBJECTS: &[(&str, usize)] = &[
    ("small.txt", 1 << 10),
    ("medium.bin", 1 << 20),
    ("large.bin", 8 << 20),
];

fn body(key: &str, len: usize) -> Vec<u8> {
    key.bytes().cycle().take(len).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pops_behind_a_shield_fetch_each_object_once_from_rgw() {
    let ceph = cluster();
    let dir = tempfile::tempdir().unwrap();
    let s3 = ceph.s3cmd(dir.path());
    let bucket = ceph.bucket(&s3, "fleet");
    for (key, len) in OBJECTS {
        s3.put(
            dir.path(),
            &body(key, *len),
            &format!("s3://{bucket}/{key}"),
            &["--acl-public", "--add-header=Cache-Control:max-age=600"],
        );
    }
    // A gateway of this test's own: its counters see this fleet's fetches only.
    let gateway = Gateway::start("fleet");
    let before = gateway.gets();
    let spaces = space("pub", &bucket, "");
    let shield = start_edge(&config("shield", &gateway.endpoint, "", &spaces)).await;
    let parent = format!(
        "{spaces}\n[parent]\nurl = \"http://{}\"\nadmin = \"http://{}\"\n",
        shield.http_addr.unwrap(),
        shield.admin_addr.unwrap()
    );
    let mut pops = Vec::new();
    for i in 0..3 {
        let name = format!("pop-{i}");
        pops.push(start_edge(&config(&name, &gateway.endpoint, "", &parent)).await);
    }
    let c = client(&["pub"], &[]);
    let mut requests = Vec::new();
    for pop in &pops {
        for (key, len) in OBJECTS {
            for _ in 0..10 {
                let (c, target) = (c.clone(), url(pop.http_addr, "pub", &format!("/{key}")));
                requests.push(tokio::spawn(async move {
                    let r = c.get(target).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    (r.bytes().await.unwrap().len(), *len)
                }));
            }
        }
    }
    for request in requests {
        let (got, expected) = request.await.unwrap();
        assert_eq!(got, expected);
    }
    assert_eq!(
        gateway.gets() - before,
        OBJECTS.len() as u64,
        "90 requests through three PoPs and a shield: one GET per object at RGW"
    );

    // The shield's entry comes first in what a PoP serves.
    let r = c
        .get(url(pops[0].http_addr, "pub", "/small.txt"))
        .send()
        .await
        .unwrap();
    let status = cache_status(&r);
    assert!(
        status.starts_with("shield; ") && status.contains("pop-0; hit"),
        "{status}"
    );

    // Overwritten at RGW, purged through PoP 0 (which purges the shield first): one more GET.
    s3.put(
        dir.path(),
        b"small, version two",
        &format!("s3://{bucket}/small.txt"),
        &["--acl-public", "--add-header=Cache-Control:max-age=600"],
    );
    let reply = purge(&c, pops[0].admin_addr, "pub", &["small.txt"]).await;
    let statuses: Vec<&str> = reply["pops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["done", "done"], "{reply}");
    for _ in 0..3 {
        let r = c
            .get(url(pops[0].http_addr, "pub", "/small.txt"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "small, version two");
    }
    assert_eq!(gateway.gets() - before, OBJECTS.len() as u64 + 1);
    for pop in pops {
        pop.stop().await;
    }
    shield.stop().await;
}
