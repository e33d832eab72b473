//! `/login`: a staff member whose chat is linked to a dashboard user (`user chat`) gets a
//! one-time link that signs them in. To any other chat the command does not exist.

use std::sync::Arc;

use loyalty_core::access::SignInLinks;

use super::{BotError, ClientBot};
use crate::text::Lang;

impl ClientBot {
    /// Answers `/login` with the dashboard's sign-in links for this chat's users.
    pub fn with_sign_in(mut self, links: Arc<dyn SignInLinks>) -> ClientBot {
        self.sign_in = Some(links);
        self
    }

    pub(super) async fn sign_in(&self, chat_id: i64, lang: Lang) -> Result<(), BotError> {
        let Some(links) = &self.sign_in else {
            return self.help(chat_id, lang).await;
        };
        let links = links.sign_in_links(chat_id).await?;
        if links.is_empty() {
            return self.help(chat_id, lang).await;
        }
        let minutes = loyalty_core::access::SIGN_IN_MINUTES;
        let mut text = match lang {
            Lang::Ru => {
                format!("Вход в панель салона — ссылка действует {minutes} минут, один раз:")
            }
            Lang::En => format!(
                "Sign in to the salon's dashboard — the link works for {minutes} minutes, once:"
            ),
        };
        for l in &links {
            text.push_str(&format!("\n\n«{}» ({}):\n{}", l.salon, l.email, l.url));
        }
        self.reply(chat_id, &text, None).await
    }
}
