//! Rollout through the router's admin API: token required, bad policies
//! refused with the old one kept, a new policy served within a second.

use std::time::Duration;

use integration_tests::{ADMIN_TOKEN, Cluster};

async fn mode(http: &reqwest::Client, router: &str, uid: &str) -> anyhow::Result<String> {
    let body: serde_json::Value = http
        .get(format!("{router}/v1/route?uid={uid}"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(body["mode"].as_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_guards_and_applies_the_rollout_policy() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let http = reqwest::Client::new();
    let admin = format!("{}/v1/admin/rollout", cluster.sys.admin_url);
    let router = cluster.sys.router_url.clone();

    // No token, wrong token: 401.
    assert_eq!(http.get(&admin).send().await?.status(), 401);
    assert_eq!(
        http.get(&admin).bearer_auth("wrong").send().await?.status(),
        401
    );
    let policy =
        serde_json::json!({ "enabled": true, "percent": 0, "allow": { "uids": ["tester"] } });
    assert_eq!(http.put(&admin).json(&policy).send().await?.status(), 401);

    // Malformed and invalid policies are refused; the old one stays.
    let before: serde_json::Value = http
        .get(&admin)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let bad = http
        .put(&admin)
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    assert_eq!(bad.status(), 400);
    let invalid = http
        .put(&admin)
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({ "enabled": true, "percent": 250 }))
        .send()
        .await?;
    assert_eq!(invalid.status(), 400);
    assert!(invalid.text().await?.contains("percent"));
    let after: serde_json::Value = http
        .get(&admin)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        before, after,
        "a refused policy leaves the old one in force"
    );
    assert_eq!(mode(&http, &router, "anyone").await?, "long");

    // 0 % with an allow-listed tester: served within a second.
    let put = http
        .put(&admin)
        .bearer_auth(ADMIN_TOKEN)
        .json(&policy)
        .send()
        .await?;
    assert!(put.status().is_success(), "{}", put.text().await?);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        if mode(&http, &router, "anyone").await? == "short" {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the new policy was not served within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        mode(&http, &router, "tester").await?,
        "long",
        "allow list beats the percentage"
    );

    // Nodes are listed with their load.
    let nodes: serde_json::Value = http
        .get(format!("{}/v1/admin/nodes", cluster.sys.admin_url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert!(
        nodes.to_string().contains(&cluster.conn_node_id()),
        "{nodes}"
    );
    cluster.stop().await
}
