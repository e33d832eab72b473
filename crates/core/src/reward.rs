//! What points buy: the partner's rewards catalog.

use serde::{Deserialize, Serialize};

use crate::model::{PartnerId, RewardId};
use crate::money::Points;

/// What a reward gives the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RewardKind {
    /// A money certificate of `value_minor` (kopecks) to pay a bill with.
    Certificate { value_minor: i64 },
    /// One service from the CRM's list, at the price it had when the reward was set up.
    Service {
        service_id: String,
        price_minor: i64,
    },
}

impl RewardKind {
    /// What the reward is worth in money (minor units).
    pub fn value_minor(&self) -> i64 {
        match self {
            RewardKind::Certificate { value_minor } => *value_minor,
            RewardKind::Service { price_minor, .. } => *price_minor,
        }
    }
}

/// A reward in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reward {
    pub id: RewardId,
    pub partner_id: PartnerId,
    pub title: String,
    /// What it costs in points.
    pub cost: Points,
    pub kind: RewardKind,
    /// Removed rewards stay for the redemptions that name them, but cannot be bought.
    pub active: bool,
}

/// A reward to add.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewReward {
    pub title: String,
    pub cost: Points,
    pub kind: RewardKind,
}

/// Why a reward cannot be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewardError {
    #[error("a reward needs a title")]
    NoTitle,
    #[error("a reward costs a positive number of points, got {0}")]
    Cost(i64),
    #[error("a reward's value must be positive, got {0}")]
    Value(i64),
    #[error("a service reward names the CRM's service id")]
    NoService,
}

impl NewReward {
    pub fn validate(&self) -> Result<(), RewardError> {
        if self.title.trim().is_empty() {
            return Err(RewardError::NoTitle);
        }
        if !self.cost.is_positive() {
            return Err(RewardError::Cost(self.cost.value()));
        }
        match &self.kind {
            RewardKind::Certificate { value_minor } if *value_minor <= 0 => {
                Err(RewardError::Value(*value_minor))
            }
            RewardKind::Service { service_id, .. } if service_id.trim().is_empty() => {
                Err(RewardError::NoService)
            }
            RewardKind::Service { price_minor, .. } if *price_minor <= 0 => {
                Err(RewardError::Value(*price_minor))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_and_json() {
        let ok = NewReward {
            title: "Сертификат 500 ₽".into(),
            cost: Points(500),
            kind: RewardKind::Certificate {
                value_minor: 50_000,
            },
        };
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(
            serde_json::to_value(&ok.kind).unwrap(),
            serde_json::json!({"kind": "certificate", "value_minor": 50000})
        );
        let free = NewReward {
            cost: Points(0),
            ..ok.clone()
        };
        assert_eq!(free.validate(), Err(RewardError::Cost(0)));
        let untitled = NewReward {
            title: " ".into(),
            ..ok.clone()
        };
        assert_eq!(untitled.validate(), Err(RewardError::NoTitle));
        let service = NewReward {
            kind: RewardKind::Service {
                service_id: "".into(),
                price_minor: 100,
            },
            ..ok
        };
        assert_eq!(service.validate(), Err(RewardError::NoService));
    }
}
