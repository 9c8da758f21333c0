//! The server starts and answers its operational endpoints.

mod support;

use support::TestServer;

#[tokio::test]
async fn health_endpoints_answer() {
    let server = TestServer::start().await;
    let client = reqwest::Client::new();

    let health = client.get(format!("{}/healthz", server.url)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = client.get(format!("{}/readyz", server.url)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}
