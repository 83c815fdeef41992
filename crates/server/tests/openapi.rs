//! The OpenAPI document describes exactly the routes the server answers: every
//! operation it lists, called over HTTP, is routed: never 405, and never the
//! router's own 404 for a path it does not know (a handler's 404 for a thing
//! that does not exist, such as an endpoint id or this plain-HTTP server's CA,
//! shows the route is there).

mod common;

use common::*;
use reqwest::Method;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_in_the_openapi_document_is_routed() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let cast = cast(&server).await;
    let id = file_request(&server, &cast).await;

    let (status, document) = server.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    let paths = document["paths"].as_object().unwrap();
    let id = id.to_string();
    let mut called = 0;
    for (path, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            let concrete = path
                .replace("{id}", if path.starts_with("/api/v1/tokens") { "1" } else { &id })
                .replace(
                    "{name}",
                    if path.starts_with("/api/v1/accounts") { "oscar" } else { "payroll" },
                );
            let method: Method = method.to_uppercase().parse().unwrap();
            let body = operation.get("requestBody").map(|_| Value::Object(Default::default()));
            let (status, answer) =
                server.call(method.clone(), &concrete, Some(&server.admin), body).await;
            let unrouted = status == 404 && answer["error"]["message"] == "no such route";
            assert!(
                status != 405 && !unrouted,
                "{method} {concrete} ({}) answered {status}: {answer}",
                operation["operationId"]
            );
            called += 1;
        }
    }
    // Every lifecycle verb has its own operation, besides the other routes.
    assert!(called >= 21 + 20, "only {called} operations were listed");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_route_is_404_with_a_json_error() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let (status, body) = server.get("/api/v1/nothing-here", BOOTSTRAP_TOKEN).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "PW404-not-found");
    server.stop().await;
}
