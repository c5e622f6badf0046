//! The fakes over a real socket: the IMDS header rule, ARM's bearer check, and the SDK
//! transport's refusal of anything but loopback.

use azure_core::http::{HttpClient, Method, Request, Url};
use fake_azure::{FakeAzure, LoopbackTransport, ScaleSetSpec, COMPUTE_API_VERSION};

#[tokio::test]
async fn imds_wants_the_metadata_header_and_arm_wants_its_token() {
    let fakes = FakeAzure::start().await;
    let id = fakes.arm.add_scale_set(ScaleSetSpec::uniform("vmss", 1));
    let http = reqwest::Client::new();
    let token_url = format!("{}?api-version=2019-08-01&resource={}", fakes.identity.token_url(), fakes.arm.audience());

    let refused = http.get(&token_url).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    let token: serde_json::Value =
        http.get(&token_url).header("Metadata", "true").send().await.unwrap().json().await.unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();

    let vmss = format!("{}{id}?api-version={COMPUTE_API_VERSION}", fakes.arm.base_url());
    assert_eq!(http.get(&vmss).send().await.unwrap().status(), 401);
    let answer = http.get(&vmss).bearer_auth(&token).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(answer.headers().contains_key("x-ms-ratelimit-remaining-resource"));
    fakes.identity.expire_all();
    assert_eq!(http.get(&vmss).bearer_auth(&token).send().await.unwrap().status(), 401);
    assert_eq!(fakes.arm.exchanges().len(), 3);
}

#[tokio::test]
async fn the_sdk_transport_reaches_only_the_fakes() {
    let fakes = FakeAzure::start().await;
    let transport = LoopbackTransport::new(Some(&fakes.identity), Some(&fakes.key_vault));
    let request = Request::new(Url::parse("https://management.azure.com/subscriptions").unwrap(), Method::Get);

    let err = transport.execute_request(&request).await.unwrap_err();

    assert!(err.to_string().contains("only reach loopback"), "{err}");
    assert!(fakes.arm.exchanges().is_empty());
}
