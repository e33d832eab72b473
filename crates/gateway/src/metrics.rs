//! `GET /metrics`: Prometheus text, through `prometheus-client`.

use std::sync::Arc;
use std::time::Duration;

use loyalty_core::OutboxStats;
use loyalty_core::health::IncidentRow;
use loyalty_core::inbox::InboxStats;
use loyalty_core::sync::SyncCursor;
use loyalty_telegram::SendStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    crm: String,
    /// accepted, duplicate, rejected
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CrmCallLabels {
    crm: String,
    operation: String,
    /// ok, or the error's kind
    result: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CrmOpLabels {
    crm: String,
    operation: String,
}

/// The gateway's metrics. Cheap to update from any task.
/// What the gauges show, read from the database at scrape time.
#[derive(Debug, Default)]
pub struct Gauges {
    pub outbox: Option<OutboxStats>,
    pub inbox: Option<InboxStats>,
    pub sync: Vec<SyncCursor>,
    /// Open connection incidents.
    pub incidents: Vec<IncidentRow>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IncidentLabels {
    connection: String,
    incident: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    connection: String,
}

pub struct Metrics {
    registry: Registry,
    deliveries: Family<DeliveryLabels, Counter>,
    points_accrued: Counter,
    points_reversed: Counter,
    outbox_pending: Gauge,
    outbox_dead: Gauge,
    outbox_oldest_age: Gauge,
    inbox_queued: Gauge,
    inbox_dead: Gauge,
    inbox_oldest_age: Gauge,
    sync_lag: Family<ConnectionLabels, Gauge>,
    incidents: Family<IncidentLabels, Gauge>,
    crm_calls: Family<CrmCallLabels, Counter>,
    crm_latency: Family<CrmOpLabels, Histogram>,
}

/// Reads the Telegram worker's counters on each scrape.
#[derive(Debug)]
struct TelegramCollector(Arc<SendStats>);

impl Collector for TelegramCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let mut family = encoder.encode_descriptor(
            "loyalty_telegram_sends",
            "Telegram notification send attempts by result",
            None,
            MetricType::Counter,
        )?;
        for (result, counter) in [
            ("sent", &s.sent),
            ("retried", &s.retried),
            ("rate_limited", &s.rate_limited),
            ("chat_gone", &s.chat_gone),
            ("dead", &s.dead),
        ] {
            let labels = [("result", result)];
            ConstCounter::new(counter.load(Ordering::Relaxed))
                .encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// `telegram`: the outbox worker's counters, when the bot runs.
    pub fn new(telegram: Option<Arc<SendStats>>) -> Metrics {
        let mut registry = Registry::with_prefix("loyalty");
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "CRM webhook deliveries by CRM and result (accepted, duplicate, rejected)",
            deliveries.clone(),
        );
        let points_accrued = Counter::default();
        registry.register(
            "points_accrued",
            "Points credited for visits",
            points_accrued.clone(),
        );
        let points_reversed = Counter::default();
        registry.register(
            "points_reversed",
            "Points taken back from visits",
            points_reversed.clone(),
        );
        let outbox_pending = Gauge::default();
        registry.register(
            "outbox_pending",
            "Notifications waiting to be sent",
            outbox_pending.clone(),
        );
        let outbox_dead = Gauge::default();
        registry.register(
            "outbox_dead",
            "Notifications given up on (see the operator's replay)",
            outbox_dead.clone(),
        );
        let outbox_oldest_age = Gauge::default();
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest notification waiting to be sent",
            outbox_oldest_age.clone(),
        );
        let inbox_queued = Gauge::default();
        registry.register(
            "inbox_queued",
            "CRM events waiting for the CRM's API before they are applied",
            inbox_queued.clone(),
        );
        let inbox_dead = Gauge::default();
        registry.register(
            "inbox_dead",
            "CRM events given up on (see `loyalty-gateway inbox list --dead`)",
            inbox_dead.clone(),
        );
        let inbox_oldest_age = Gauge::default();
        registry.register(
            "inbox_oldest_age_seconds",
            "Age of the oldest CRM event waiting for the CRM's API",
            inbox_oldest_age.clone(),
        );
        let sync_lag = Family::<ConnectionLabels, Gauge>::default();
        registry.register(
            "sync_lag_seconds",
            "How far behind now each connection's reconciliation cursor is",
            sync_lag.clone(),
        );
        let incidents = Family::<IncidentLabels, Gauge>::default();
        registry.register(
            "connection_incident",
            "1 for each open incident of a connection (see `loyalty-gateway sync status`)",
            incidents.clone(),
        );
        let crm_calls = Family::<CrmCallLabels, Counter>::default();
        registry.register(
            "crm_calls",
            "Calls to CRM APIs by CRM, operation and result",
            crm_calls.clone(),
        );
        let crm_latency = Family::<CrmOpLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 12))
        });
        registry.register(
            "crm_call_duration_seconds",
            "Latency of calls to CRM APIs",
            crm_latency.clone(),
        );
        if let Some(stats) = telegram {
            registry.register_collector(Box::new(TelegramCollector(stats)));
        }
        Metrics {
            registry,
            deliveries,
            points_accrued,
            points_reversed,
            outbox_pending,
            outbox_dead,
            outbox_oldest_age,
            inbox_queued,
            inbox_dead,
            inbox_oldest_age,
            sync_lag,
            incidents,
            crm_calls,
            crm_latency,
        }
    }

    pub fn delivery(&self, crm: &str, result: &str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                crm: crm.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    /// A net change of points from one delivery.
    pub fn points(&self, delta: i64) {
        if delta > 0 {
            self.points_accrued.inc_by(delta.unsigned_abs());
        } else if delta < 0 {
            self.points_reversed.inc_by(delta.unsigned_abs());
        }
    }

    pub fn crm_call(&self, crm: &str, operation: &str, result: &str, took: Duration) {
        self.crm_calls
            .get_or_create(&CrmCallLabels {
                crm: crm.to_owned(),
                operation: operation.to_owned(),
                result: result.to_owned(),
            })
            .inc();
        self.crm_latency
            .get_or_create(&CrmOpLabels {
                crm: crm.to_owned(),
                operation: operation.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// The text exposition, with the gauges as of `gauges` (read just before).
    pub fn render(&self, gauges: Gauges, now_ms: i64) -> String {
        for cursor in &gauges.sync {
            if let Some(at) = cursor.cursor_ms {
                self.sync_lag
                    .get_or_create(&ConnectionLabels {
                        connection: cursor.connection_id.to_string(),
                    })
                    .set((now_ms - at).max(0) / 1000);
            }
        }
        // Closed incidents leave the family.
        self.incidents.clear();
        for i in &gauges.incidents {
            self.incidents
                .get_or_create(&IncidentLabels {
                    connection: i.connection_id.to_string(),
                    incident: i.incident.as_str().to_owned(),
                })
                .set(1);
        }
        let stats = gauges.outbox;
        if let Some(s) = gauges.inbox {
            self.inbox_queued.set(s.queued);
            self.inbox_dead.set(s.dead);
            let age = s
                .oldest_received_at_ms
                .map(|t| (now_ms - t).max(0) / 1000)
                .unwrap_or(0);
            self.inbox_oldest_age.set(age);
        }
        if let Some(s) = stats {
            self.outbox_pending.set(s.pending);
            self.outbox_dead.set(s.dead);
            let age = s
                .oldest_pending_created_ms
                .map(|t| (now_ms - t).max(0) / 1000)
                .unwrap_or(0);
            self.outbox_oldest_age.set(age);
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_exposition_has_every_family() {
        let stats = Arc::new(SendStats::default());
        stats.sent.fetch_add(3, Ordering::Relaxed);
        let m = Metrics::new(Some(stats));
        m.delivery("yclients", "accepted");
        m.delivery("yclients", "accepted");
        m.points(200);
        m.points(-50);
        m.crm_call("yclients", "get_record", "ok", Duration::from_millis(30));
        let gauges = Gauges {
            outbox: Some(OutboxStats {
                pending: 4,
                dead: 1,
                oldest_pending_created_ms: Some(1_000),
            }),
            inbox: Some(InboxStats {
                queued: 7,
                oldest_received_at_ms: Some(31_000),
                dead: 2,
            }),
            sync: vec![SyncCursor {
                connection_id: loyalty_core::ConnectionId(3),
                cursor_ms: Some(1_000),
                ..SyncCursor::default()
            }],
            incidents: vec![IncidentRow {
                id: 1,
                connection_id: loyalty_core::ConnectionId(3),
                partner_id: loyalty_core::PartnerId(1),
                incident: loyalty_core::health::Incident::CrmRefused,
                detail: "401".into(),
                opened_at_ms: 0,
                closed_at_ms: None,
            }],
        };
        let text = m.render(gauges, 61_000);
        assert!(
            text.contains(
                "loyalty_connection_incident{connection=\"3\",incident=\"crm_refused\"} 1"
            ),
            "{text}"
        );
        // Closed: gone from the next scrape.
        let text_after = m.render(Gauges::default(), 61_000);
        assert!(!text_after.contains("crm_refused"), "{text_after}");
        for line in [
            "loyalty_webhook_deliveries_total{crm=\"yclients\",result=\"accepted\"} 2",
            "loyalty_points_accrued_total 200",
            "loyalty_points_reversed_total 50",
            "loyalty_outbox_pending 4",
            "loyalty_outbox_dead 1",
            "loyalty_outbox_oldest_pending_age_seconds 60",
            "loyalty_inbox_queued 7",
            "loyalty_inbox_dead 2",
            "loyalty_inbox_oldest_age_seconds 30",
            "loyalty_sync_lag_seconds{connection=\"3\"} 60",
            "loyalty_crm_calls_total{crm=\"yclients\",operation=\"get_record\",result=\"ok\"} 1",
            "loyalty_telegram_sends_total{result=\"sent\"} 3",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.contains("loyalty_crm_call_duration_seconds_bucket"));
    }
}
