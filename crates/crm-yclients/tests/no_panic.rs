//! The webhook parser's fuzz target (`crm_conformance::fuzz`), bounded: arbitrary bytes,
//! damaged and structurally mutated YCLIENTS and Altegio fixtures. No input may panic.

use crm_yclients::{ParseContext, parse_webhook};
use loyalty_core::{Country, Currency};

#[test]
fn the_webhook_parser_never_panics() {
    let ctx = ParseContext {
        currency: Currency::Rub,
        utc_offset_minutes: 180,
        country: Country::RU,
    };
    let fixtures = crm_conformance::fuzz::fixtures(&["yclients", "altegio"]);
    assert!(fixtures.len() >= 15, "fixtures missing");
    crm_conformance::fuzz::never_panics(&fixtures, &|body| parse_webhook(&ctx, body), 3_000);
}
