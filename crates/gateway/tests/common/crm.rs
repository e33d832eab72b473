//! YCLIENTS as the tests play it: an address where nothing answers, and the record API.

use std::net::SocketAddr;

use serde_json::{Value, json};
use wiremock::{Request, Respond, ResponseTemplate};

/// An address that is taken but not listening: every call to it is refused, and no other
/// server of the test can be given it until `reserved` is dropped (then a wiremock server can
/// bind it, as the CRM coming back).
pub fn unreachable_address() -> (tokio::net::TcpSocket, SocketAddr) {
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.set_reuseaddr(true).unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = reserved.local_addr().unwrap();
    (reserved, addr)
}

/// `GET /record/{company}/{id}`: the record as the CRM has it now, `data(id)` (a webhook body's
/// `data`), in YCLIENTS' envelope.
pub struct RecordById(pub fn(u64) -> Value);

impl Respond for RecordById {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let id = request
            .url
            .path()
            .rsplit('/')
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        ResponseTemplate::new(200)
            .set_body_json(json!({"success": true, "data": (self.0)(id), "meta": []}))
    }
}
