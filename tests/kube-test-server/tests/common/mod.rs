//! Shared helpers for the integration tests.
#![allow(dead_code)]

use kube_test_server::TestServer;

/// A server on an ephemeral port and a kube client for it.
pub async fn server() -> (TestServer, kube::Client) {
    let server = TestServer::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = server.client().await.unwrap();
    (server, client)
}

/// A client that does not retry 429/503/504 answers.
pub async fn client_without_retry(server: &TestServer) -> kube::Client {
    let mut config = server.config().await.unwrap();
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

/// The Status of an API error.
pub fn status(err: kube::Error) -> kube::core::Status {
    match err {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Polls `f` until it returns true, for at most `secs` seconds.
pub async fn eventually<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}
