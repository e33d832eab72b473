//! A salon's churn and value model as the scans, the CLI and the dashboard use it: built from
//! the salon's history (`loyalty_engage::risk::build`, off the async threads) and kept, served
//! while fresh; and the clients' 12-month values under it, for the dashboard's analytics.

use loyalty_core::engage::{Engagement, TriggerRule};
use loyalty_core::offer::Benefit;
use loyalty_core::{ClientId, CrmKind, PartnerId, StoreError};
use loyalty_engage::EngageStore;
use loyalty_engage::risk::{self, SalonModel};
use loyalty_engage::scan::PROFILE_DAYS;
use serde::{Deserialize, Serialize};

use crate::SqlStore;

/// A salon's model serves its scans this long; older, the next scan that needs it builds it
/// again first.
pub const MODEL_FRESH_MS: i64 = 7 * 24 * 3_600_000;

const DAY_MS: i64 = 86_400_000;

/// Some trigger's offer has a variant that suggests a service (it needs the co-occurrence).
pub fn suggests_services(settings: &Engagement) -> bool {
    settings
        .triggers
        .iter()
        .filter_map(|t| t.offer.as_ref())
        .flat_map(|o| &o.variants)
        .any(|v| matches!(v.benefit, Benefit::ServiceCashback { .. }))
}

/// Where a client's 12-month value falls: the lower bound of each bin, minor units of roubles
/// (the last bin has no upper bound).
pub const VALUE_BINS_MINOR: [i64; 6] = [0, 100_000, 300_000, 1_000_000, 3_000_000, 10_000_000];

/// How many clients [`ClientValues::at_risk`] lists.
pub const AT_RISK_SHOWN: usize = 20;

/// A client likelier gone than not is at risk.
pub const AT_RISK_P_ALIVE: f64 = 0.5;

/// The salon's clients under its model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientValues {
    /// When the model was fitted.
    pub fitted_at_ms: i64,
    /// Clients per bin of [`VALUE_BINS_MINOR`].
    pub bins: Vec<i64>,
    /// Every client's expected 12-month value together, minor units.
    pub total_minor: i64,
    /// Clients the model could read.
    pub clients: i64,
    /// Those likelier gone than not whose loss costs most, most first.
    pub at_risk: Vec<AtRisk>,
    /// How many are at risk in all.
    pub at_risk_count: i64,
}

/// One client at risk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AtRisk {
    pub client: ClientId,
    /// Her chance of still being a client, basis points.
    pub p_alive_bps: i64,
    /// Her 12-month value were she still coming, minor units: what losing her costs.
    pub at_stake_minor: i64,
    /// Days since her last visit.
    pub days_away: i64,
}

impl SqlStore {
    /// Judges the methods on the salon's history, fits the model where it wins, counts which
    /// services its clients buy together when `suggestions` (offers that suggest one need it),
    /// and keeps it; the fit runs off the async threads.
    pub async fn refresh_model(
        &self,
        partner: PartnerId,
        now_ms: i64,
        suggestions: bool,
    ) -> Result<SalonModel, StoreError> {
        let visits: Vec<_> = self
            .came_visits(partner)
            .await?
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let customers: Vec<_> = self
            .visit_histories(partner, now_ms)
            .await?
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        // The co-occurrence reads a year of records' lines: only for a salon whose offers
        // suggest a service.
        let suggest = match suggestions {
            true => Some(
                self.service_baskets(partner, now_ms - PROFILE_DAYS * DAY_MS)
                    .await?,
            ),
            false => None,
        };
        let mut model =
            tokio::task::spawn_blocking(move || risk::build(&visits, &customers, now_ms))
                .await
                .map_err(|e| StoreError::Backend(format!("the model's fit stopped: {e}")))?;
        model.suggest = suggest;
        self.save_salon_model(partner, &model).await?;
        Ok(model)
    }

    /// The model a scan of these settings uses: none unless an `at_risk` trigger or an offer
    /// that suggests a service is set; the stored one while fresh (and holding the
    /// suggestions when they are needed), else built again now.
    pub async fn model_for(
        &self,
        partner: PartnerId,
        settings: &Engagement,
        now_ms: i64,
    ) -> Result<Option<SalonModel>, StoreError> {
        let suggestions = suggests_services(settings);
        let at_risk = settings
            .triggers
            .iter()
            .any(|t| matches!(t.rule, TriggerRule::AtRisk { .. }));
        if !at_risk && !suggestions {
            return Ok(None);
        }
        match self.salon_model(partner).await? {
            Some(m)
                if (0..MODEL_FRESH_MS).contains(&(now_ms - m.fitted_at_ms))
                    && (m.suggest.is_some() || !suggestions) =>
            {
                Ok(Some(m))
            }
            _ => self
                .refresh_model(partner, now_ms, suggestions)
                .await
                .map(Some),
        }
    }

    /// Whether one of the partner's connections sends SMS: a YCLIENTS or Altegio connection
    /// with API tokens (what its adapter's capabilities say, read without building it).
    pub async fn sends_sms(&self, partner: PartnerId) -> Result<bool, StoreError> {
        for c in self.connections().await? {
            if c.partner_id != partner || !matches!(c.kind, CrmKind::Yclients | CrmKind::Altegio) {
                continue;
            }
            if self
                .connection_settings(c.id)
                .await?
                .is_some_and(|s| s.partner_token.is_some())
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every client's 12-month value under the salon's stored model (`None` without one that
    /// is fitted): how they spread over [`VALUE_BINS_MINOR`], and those at risk whose loss
    /// costs most.
    pub async fn client_values(
        &self,
        partner: PartnerId,
        now_ms: i64,
    ) -> Result<Option<ClientValues>, StoreError> {
        let Some(model) = self.salon_model(partner).await? else {
            return Ok(None);
        };
        if model.bgnbd.is_none() {
            return Ok(None);
        }
        let customers = self.visit_histories(partner, now_ms).await?;
        let values = tokio::task::spawn_blocking(move || values_of(&model, &customers))
            .await
            .map_err(|e| StoreError::Backend(format!("the values stopped: {e}")))?;
        Ok(Some(values))
    }
}

/// [`SqlStore::client_values`] on the histories read.
fn values_of(
    model: &SalonModel,
    customers: &[(ClientId, loyalty_engage::model::Customer)],
) -> ClientValues {
    let mut out = ClientValues {
        fitted_at_ms: model.fitted_at_ms,
        bins: vec![0; VALUE_BINS_MINOR.len()],
        ..ClientValues::default()
    };
    let mut at_risk = Vec::new();
    for (id, c) in customers {
        let Some(r) = model.risk(c) else { continue };
        out.clients += 1;
        out.total_minor = out.total_minor.saturating_add(r.clv_minor);
        let bin = VALUE_BINS_MINOR
            .iter()
            .rposition(|lo| r.clv_minor >= *lo)
            .unwrap_or(0);
        out.bins[bin] += 1;
        if r.p_alive < AT_RISK_P_ALIVE {
            at_risk.push(AtRisk {
                client: *id,
                p_alive_bps: (r.p_alive * 10_000.0).round() as i64,
                at_stake_minor: r.at_stake_minor,
                days_away: (c.t - c.recency).round() as i64,
            });
        }
    }
    out.at_risk_count = at_risk.len() as i64;
    at_risk.sort_by(|a, b| {
        b.at_stake_minor
            .cmp(&a.at_stake_minor)
            .then(a.p_alive_bps.cmp(&b.p_alive_bps))
            .then(a.client.cmp(&b.client))
    });
    at_risk.truncate(AT_RISK_SHOWN);
    out.at_risk = at_risk;
    out
}
