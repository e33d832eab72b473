//! The demo's third salon: «Ромашка» on DIKIDI, which has no API — its export imported from a
//! file, a visit entered by its administrator in the bot, no password given to anyone.

use loyalty_core::{ClientStore, LedgerStore, PartnerId, Phone};
use serde_json::{Value, json};

use super::{ANNA, Standin, drain, wait_until};
use crate::cli::{self, ConnectionAdd};
use crate::config::Config;

/// The administrator's chat.
const ADMIN_CHAT: i64 = 1900;

/// A DIKIDI journal export as Excel saves it on a Russian Windows: `;`, Windows-1251 would do
/// as well; one row the importer refuses.
const EXPORT: &str = "Дата;Клиент;Телефон;Услуга;Мастер;Сумма;Статус\n\
12.03.2025 11:00;Анна;8 (916) 111-00-01;Маникюр;Ирина;1 800,00;Пришёл\n\
02.04.2025 12:30;Анна;8 (916) 111-00-01;Маникюр;Ирина;1 800,00;Пришёл\n\
05.04.2025 15:00;Вера;+7 916 555-01-02;Педикюр;Ирина;2 400,00;Не пришёл\n\
06.04.2025 10:00;Без номера;;Педикюр;Ирина;2 400,00;Пришёл\n";

pub(super) async fn salon(
    gateway: &crate::Gateway,
    config: &Config,
    standin: &Standin,
    say: &impl Fn(String),
) -> anyhow::Result<Value> {
    let now = gateway.engine.now_ms();
    let partner = cli::partner_add(
        &gateway.store,
        &super::salon("Ромашка", 500),
        &loyalty_core::audit::Actor::system(),
        now,
    )
    .await?;
    let id = PartnerId(partner["id"].as_i64().unwrap_or_default());
    let connection = cli::connection_add(
        &gateway.store,
        config,
        &ConnectionAdd {
            partner: id.0,
            crm: loyalty_core::CrmKind::Dikidi,
            company_id: "591511".into(),
            partner_token: None,
            user_token: None,
            login: cli::CrmLogin::default(),
            utc_offset_minutes: None,
            country: None,
        },
        now,
    )
    .await?;
    say(format!(
        "\n20:20  «Ромашка», a nail studio on DIKIDI — no API, no webhooks — joins with 5 %:\n      $ loyalty-gateway connection add --partner {} --crm dikidi --company-id 591511\n      {}",
        id.0,
        connection["next"].as_str().unwrap_or_default()
    ));

    let dir = std::env::temp_dir().join(format!("loyalty_demo_{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("dikidi_export.csv");
    std::fs::write(&file, EXPORT)?;
    let request = |apply: bool| cli::ImportFile {
        partner: id.0,
        clients: None,
        visits: Some(file.clone()),
        balances: None,
        preset: loyalty_import::Preset::Dikidi,
        map: Vec::new(),
        encoding: None,
        delimiter: None,
        apply,
        accrue: false,
        force: false,
        progress: false,
    };
    let checked = cli::import_file(&gateway.engine, &gateway.store, &request(false)).await?;
    say(format!(
        "20:21  Its export from DIKIDI, checked first:\n      $ loyalty-gateway import file --partner {} --visits dikidi_export.csv --preset dikidi\n      {}",
        id.0,
        cli::import_file_text(&checked).replace('\n', "\n      ")
    ));
    let imported = cli::import_file(&gateway.engine, &gateway.store, &request(true)).await?;
    say(format!(
        "20:22  …then applied as history (no points for the past; the same file again changes nothing):\n      $ loyalty-gateway import file … --apply\n      {} visits in the history",
        imported["applied"]
    ));
    let _ = std::fs::remove_dir_all(&dir);

    // The administrator enters today's visit in the bot.
    cli::staff_add(&gateway.store, id.0, ADMIN_CHAT, now).await?;
    if let Ok(mut names) = standin.names.lock() {
        names.insert(ADMIN_CHAT, "Ромашка's administrator".into());
    }
    say(
        "20:30  Анна comes to «Ромашка»; the administrator enters the visit in the bot:\n      /visit 8 916 111-00-01 2500 маникюр"
            .into(),
    );
    let before = standin.sent_count();
    standin.push_message_from(
        ADMIN_CHAT,
        "Администратор",
        json!({"text": "/visit 8 916 111-00-01 2500 маникюр"}),
    );
    wait_until(|| standin.sent_count() > before).await;
    drain(gateway.store.as_ref()).await;
    let phone = Phone::parse_international(ANNA.phone)?;
    let balance = match gateway.store.client_by_phone(id, &phone).await? {
        Some(c) => gateway.store.balance(id, c.id).await?.value(),
        None => 0,
    };
    Ok(json!({
        "salon": "Ромашка",
        "crm": "dikidi",
        "import": {
            "rows": checked["rows"],
            "accepted": checked["accepted"],
            "rejected": checked["rejected"],
            "applied": imported["applied"],
        },
        "anna_balance": balance,
    }))
}
