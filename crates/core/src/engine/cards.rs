//! People who join through the bot: made the client of the salon whose link they came by, and,
//! where the salon enables it for a connection, created in its CRM (name and phone) — once: a
//! card is looked for by phone before one is created, so a try whose answer was lost finds the
//! card it made instead of making a second. Nothing the CRM owns is written back later.

use async_trait::async_trait;

use super::posting::program_of;
use super::{EngineError, LoyaltyEngine};
use crate::adapter::ClientDraft;
use crate::model::{Client, ConnectionId, PartnerId};
use crate::phone::Phone;
use crate::store::{StoreError, StoreTx};

use super::writeback::AdapterSource;

/// Who is to be created in which CRM, beside [`crate::Store`].
#[async_trait]
pub trait CardStore: Send + Sync {
    /// Clients who joined through the bot and whom no CRM of their salon knows, each with the
    /// salon's first connection that creates clients in its CRM.
    async fn cards_to_create(&self, limit: u32) -> Result<Vec<(ConnectionId, Client)>, StoreError>;
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CardPass {
    /// Cards created in a CRM.
    pub created: usize,
    /// Cards the CRM already had (by phone): linked.
    pub found: usize,
    /// Calls that failed; tried again next pass.
    pub failed: usize,
}

/// The name a card gets when the person gave none.
const NO_NAME: &str = "Клиент из Telegram";

impl LoyaltyEngine {
    /// Makes the person with this phone a client of `partner` (unless they are one), linked to
    /// the Telegram chat that shared the phone.
    pub async fn enroll(
        &self,
        partner: PartnerId,
        phone: &Phone,
        name: Option<&str>,
    ) -> Result<Client, EngineError> {
        in_tx!(self, |tx, now| async {
            program_of(tx, partner).await?;
            let (client, _) = tx.insert_client(partner, phone, name, now).await?;
            Ok::<_, EngineError>(client)
        })
    }

    /// Creates (or finds) the CRM cards of the clients [`CardStore::cards_to_create`] names.
    pub async fn create_cards(
        &self,
        cards: &dyn CardStore,
        adapters: &dyn AdapterSource,
    ) -> Result<CardPass, EngineError> {
        let mut pass = CardPass::default();
        for (connection, client) in cards.cards_to_create(50).await? {
            let Some(adapter) = adapters.adapter(connection).await? else {
                continue;
            };
            let external_id = match adapter.find_client_by_phone(&client.phone).await {
                Ok(Some(card)) => {
                    pass.found += 1;
                    card.external_id
                }
                Ok(None) => {
                    let draft = ClientDraft {
                        phone: client.phone.clone(),
                        name: client.name.clone().unwrap_or_else(|| NO_NAME.to_owned()),
                        email: None,
                    };
                    match adapter.create_client(&draft).await {
                        Ok(card) => {
                            pass.created += 1;
                            card.external_id
                        }
                        Err(_) => {
                            pass.failed += 1;
                            continue;
                        }
                    }
                }
                Err(_) => {
                    pass.failed += 1;
                    continue;
                }
            };
            in_tx!(self, |tx, _now| async {
                let tx: &mut dyn StoreTx = tx;
                tx.link_external_id(client.partner_id, connection, &external_id, client.id)
                    .await?;
                Ok::<_, EngineError>(())
            })?;
        }
        Ok(pass)
    }
}
