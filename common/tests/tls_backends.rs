//! Redis and etcd over TLS with credentials, against real servers started with
//! certificates from a test CA: the service's connection works with the CA file
//! (and the password or client certificate), and fails clearly without them.

use std::time::Duration;

use common::discovery::etcd::{EtcdConfig, EtcdDiscovery, EtcdSecurity};
use common::discovery::{Discovery, NodeInfo, ServiceKind};
use common::redis_conn::{RedisConnectError, RedisTimings, RedisTls, connect, connect_with};
use test_servers::{Etcd, RedisServer, TestCa};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn timings() -> RedisTimings {
    RedisTimings {
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(2),
        reconnect_retries: 1,
        reconnect_delay: (Duration::from_millis(50), Duration::from_millis(200)),
        cluster_retries: 1,
        cluster_retry_wait: None,
    }
}

#[tokio::test]
async fn redis_over_tls_with_a_password_works_with_the_ca_file_and_not_without() -> TestResult {
    let ca = TestCa::new()?;
    let redis = RedisServer::start_tls(&ca, "a-long-redis-password")?;
    let url = redis.url();
    assert!(url.starts_with("rediss://"));
    let tls = RedisTls {
        ca_file: Some(ca.ca_path().display().to_string()),
        ..RedisTls::default()
    };
    let mut conn = connect_with(std::slice::from_ref(&url), &tls, &timings()).await?;
    redis::cmd("SET")
        .arg("tls-key")
        .arg("over tls")
        .query_async::<()>(&mut conn)
        .await?;
    let value: String = redis::cmd("GET")
        .arg("tls-key")
        .query_async(&mut conn)
        .await?;
    assert_eq!(value, "over tls");

    // The system roots do not know the test CA.
    let Err(error) = connect(std::slice::from_ref(&url), &timings()).await else {
        return Err("an unknown CA was trusted".into());
    };
    assert!(
        error.to_string().to_lowercase().contains("certificate"),
        "{error}"
    );
    // A wrong password is refused, and the password never shows.
    let wrong = url.replace("a-long-redis-password", "wrong-password");
    let Err(error) = connect_with(&[wrong], &tls, &timings()).await else {
        return Err("a wrong password was accepted".into());
    };
    let text = error.to_string();
    assert!(
        matches!(error, RedisConnectError::Unreachable { .. }),
        "{text}"
    );
    assert!(!text.contains("wrong-password"), "{text}");
    // TLS files with a plain URL are a configuration error.
    let plain = format!("redis://127.0.0.1:{}", redis.port());
    let Err(error) = connect_with(&[plain], &tls, &timings()).await else {
        return Err("TLS files with redis://".into());
    };
    assert!(matches!(error, RedisConnectError::Tls(_)), "{error}");
    Ok(())
}

#[tokio::test]
async fn etcd_over_tls_with_a_client_certificate_registers_and_refuses_without_it() -> TestResult {
    let ca = TestCa::new()?;
    let etcd = Etcd::start_tls(&ca)?;
    let client = ca.issue("roomcast-client", &["roomcast"])?;
    let security = EtcdSecurity {
        ca_file: Some(ca.ca_path().display().to_string()),
        cert_file: Some(client.cert_path.display().to_string()),
        key_file: Some(client.key_path.display().to_string()),
        ..EtcdSecurity::default()
    };
    let config = |security: EtcdSecurity| EtcdConfig {
        endpoints: vec![etcd.endpoint()],
        prefix: "/tls-test/".into(),
        lease_ttl_secs: 5,
        connect_timeout_ms: 3000,
        security,
    };
    let discovery = EtcdDiscovery::connect(config(security.clone())).await?;
    let node = NodeInfo {
        id: "conn-tls".into(),
        ..NodeInfo::default()
    };
    discovery.register(ServiceKind::Conn, node).await?;
    let mut view = discovery.watch(ServiceKind::Conn);
    tokio::time::timeout(
        Duration::from_secs(10),
        view.wait_for(|nodes| nodes.iter().any(|n| n.id == "conn-tls")),
    )
    .await??;

    // The CA alone is not enough: etcd wants a client certificate.
    let ca_only = EtcdSecurity {
        cert_file: None,
        key_file: None,
        ..security.clone()
    };
    assert!(EtcdDiscovery::connect(config(ca_only)).await.is_err());
    // Plain gRPC to the TLS port fails too.
    assert!(
        EtcdDiscovery::connect(config(EtcdSecurity::default()))
            .await
            .is_err()
    );
    // Half a client identity is a clear error.
    let half = EtcdSecurity {
        key_file: None,
        ..security
    };
    let Err(error) = EtcdDiscovery::connect(config(half)).await else {
        return Err("a certificate without its key".into());
    };
    assert!(error.to_string().contains("key_file"), "{error}");
    Ok(())
}
