//! The adapter conformance story (`crm-conformance`) on YCLIENTS.

mod platform;

#[tokio::test]
async fn yclients_passes_the_conformance_story() {
    crm_conformance::run(&platform::YCLIENTS).await;
}
