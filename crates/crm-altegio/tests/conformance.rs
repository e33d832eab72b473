//! The adapter conformance story (`crm-conformance`) on Altegio, with the platform's subject
//! shared with `crm-yclients`.

#[path = "../../crm-yclients/tests/platform/mod.rs"]
mod platform;

#[tokio::test]
async fn altegio_passes_the_conformance_story() {
    crm_conformance::run(&platform::ALTEGIO).await;
}
