//! Salons' own bots, all at once against wiremock as Telegram: «Лотос» and «Роза» connect bots
//! of their own (`bot set`, the token checked with getMe and the webhook registered), «Сирень»
//! stays on the deployment's bot. One person (one Telegram user) is a client of all three: she
//! links, is told of each visit and exchanges points through each salon's bot, and each bot
//! speaks of its own salon only; a 429 on one bot holds that bot alone.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use common::binary::Env;
use common::{PUBLIC_URL, PgSchema, serve_with_bot};
use loyalty_core::{PartnerId, RewardStore};
use loyalty_gateway::cli::{self, RewardAdd};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const DEPLOYMENT: &str = "1000:deployment-token";
const LOTOS: &str = "2001:AAlotos-bot-token-from-botfather";
const ROZA: &str = "2002:AAroza-bot-token-from-botfather";
/// The person: the same Telegram user to every bot.
const CHAT: i64 = 7001;
const PHONE: &str = "+79161234567";

async fn telegram() -> MockServer {
    let tg = MockServer::start().await;
    for (token, id, username) in [(LOTOS, 2001, "lotos_bot"), (ROZA, 2002, "roza_bot")] {
        Mock::given(method("POST"))
            .and(path(format!("/bot{token}/getMe")))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {
                "id": id, "is_bot": true, "first_name": username, "username": username}})),
            )
            .mount(&tg)
            .await;
    }
    Mock::given(method("POST"))
        .and(path_regex(
            r"^/bot[^/]+/(setWebhook|deleteWebhook|answerCallbackQuery)$",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": true})))
        .mount(&tg)
        .await;
    Mock::given(method("POST"))
        .and(path_regex(r"^/bot[^/]+/(sendMessage|sendPhoto)$"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": {
            "message_id": 1, "date": 1_795_000_000, "chat": {"id": CHAT, "type": "private"}}})),
        )
        .mount(&tg)
        .await;
    tg
}

/// The texts one bot sent to the person (sendMessage, and sendPhoto captions), in order.
async fn said_by(tg: &MockServer, token: &str) -> Vec<String> {
    tg.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| {
            let p = r.url.path();
            p == format!("/bot{token}/sendMessage") || p == format!("/bot{token}/sendPhoto")
        })
        .filter_map(|r| {
            serde_json::from_slice::<Value>(&r.body)
                .ok()
                .and_then(|b| b["text"].as_str().map(str::to_owned))
                // A photo comes as multipart: its caption is in the body's text.
                .or_else(|| Some(String::from_utf8_lossy(&r.body).into_owned()))
        })
        .collect()
}

fn message(update: i64, text: &str) -> Value {
    json!({"update_id": update, "message": {"message_id": update, "date": 1_795_000_000,
        "chat": {"id": CHAT, "type": "private"},
        "from": {"id": CHAT, "is_bot": false, "first_name": "Анна", "language_code": "ru"},
        "text": text}})
}

fn contact(update: i64) -> Value {
    json!({"update_id": update, "message": {"message_id": update, "date": 1_795_000_000,
        "chat": {"id": CHAT, "type": "private"},
        "from": {"id": CHAT, "is_bot": false, "first_name": "Анна", "language_code": "ru"},
        "contact": {"phone_number": PHONE, "first_name": "Анна", "user_id": CHAT}}})
}

fn button(update: i64, data: &str) -> Value {
    json!({"update_id": update, "callback_query": {
        "id": format!("cb{update}"), "chat_instance": "ci", "data": data,
        "from": {"id": CHAT, "is_bot": false, "first_name": "Анна", "language_code": "ru"},
        "message": {"message_id": 500 + update, "date": 1_795_000_000,
                    "chat": {"id": CHAT, "type": "private"}}}})
}

/// An update to the bot whose webhook secret this is; `false` when the gateway answered 404.
async fn post(addr: std::net::SocketAddr, secret: &str, header: &str, update: &Value) -> bool {
    let status = reqwest::Client::new()
        .post(format!("http://{addr}/telegram/{secret}"))
        .header("x-telegram-bot-api-secret-token", header)
        .json(update)
        .send()
        .await
        .unwrap()
        .status();
    status == 200
}

/// `bot set` through the binary, the token on standard input.
fn bot_set(env: &Env, partner: i64, token: &str) -> Value {
    env.cli_stdin(&["bot", "set", "--partner", &partner.to_string()], token)
}

async fn wait_for(what: &str, f: impl AsyncFn() -> bool) {
    for _ in 0..150 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_salons_two_own_bots_one_person_each_bot_its_own_salon() {
    let schema = PgSchema::new().await;
    let tg = telegram().await;
    let (gateway, _) = serve_with_bot(&schema, DEPLOYMENT, tg.uri()).await;
    let env = Env {
        vars: vec![
            ("DATABASE_URL", schema.url.clone()),
            ("TELEGRAM_API_URL", tg.uri()),
            ("LOYALTY_PUBLIC_URL", PUBLIC_URL.to_owned()),
        ],
    };
    let salon = |name: &str| {
        env.cli(&["partner", "add", "--name", name, "--cashback-bps", "500"])["id"]
            .as_i64()
            .unwrap()
    };
    let (lotos, roza, siren) = (salon("Лотос"), salon("Роза"), salon("Сирень"));

    // Own bots: the token checked (getMe), kept, its webhook registered.
    let set = bot_set(&env, lotos, LOTOS);
    assert_eq!(set["username"], "lotos_bot");
    assert_eq!(set["bot_id"], 2001);
    assert_eq!(set["webhook"], "registered");
    assert_eq!(
        set["link"],
        format!("https://t.me/lotos_bot?start=s{lotos}")
    );
    bot_set(&env, roza, ROZA);
    let store = &gateway.store;
    let secret_a = store
        .salon_bot(PartnerId(lotos))
        .await
        .unwrap()
        .unwrap()
        .webhook_secret;
    let secret_b = store
        .salon_bot(PartnerId(roza))
        .await
        .unwrap()
        .unwrap()
        .webhook_secret;
    let hooks: Vec<String> = tg
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == format!("/bot{LOTOS}/setWebhook"))
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        hooks
            .iter()
            .any(|b| b.contains(&format!("{PUBLIC_URL}/telegram/{secret_a}"))),
        "{hooks:?}"
    );
    // Another salon cannot take a bot that serves one; a token Telegram refuses is named.
    let taken = env
        .command(false)
        .args(["bot", "set", "--partner", &siren.to_string()])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(LOTOS.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(taken.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&taken.stderr).contains("serves another salon"));
    // A token Telegram refuses, and Telegram down: said, nothing kept.
    const REFUSED: &str = "2003:AArevoked-token-from-botfather";
    const UNANSWERED: &str = "2004:AAtoken-while-telegram-is-down";
    Mock::given(method("POST"))
        .and(path(format!("/bot{REFUSED}/getMe")))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "ok": false, "error_code": 401, "description": "Unauthorized"})))
        .mount(&tg)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/bot{UNANSWERED}/getMe")))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"))
        .mount(&tg)
        .await;
    for (token, said, code) in [
        (REFUSED, "Telegram refused the token", 2),
        (UNANSWERED, "could not be asked", 1),
    ] {
        let out = env
            .command(false)
            .args(["bot", "set", "--partner", &siren.to_string()])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(token.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{token}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(said),
            "{token}"
        );
    }
    assert!(store.salon_bot(PartnerId(siren)).await.unwrap().is_none());
    // A wrong secret, or the right path with another header, is not a bot.
    assert!(!post(gateway.addr, &secret_a, "wrong", &message(1, "/start")).await);
    assert!(!post(gateway.addr, "nope", "nope", &message(1, "/start")).await);

    // She joins each salon through its bot; «Сирень» through the deployment's, by its link.
    assert!(post(gateway.addr, &secret_a, &secret_a, &message(10, "/start")).await);
    assert!(post(gateway.addr, &secret_a, &secret_a, &contact(11)).await);
    assert!(post(gateway.addr, &secret_b, &secret_b, &contact(12)).await);
    let start_c = message(13, &format!("/start s{siren}"));
    assert!(post(gateway.addr, "s3cret", "s3cret", &start_c).await);
    assert!(post(gateway.addr, "s3cret", "s3cret", &contact(14)).await);
    let a = said_by(&tg, LOTOS).await;
    assert!(
        a[0].starts_with("Здравствуйте! Это бонусная программа салона «Лотос»"),
        "{a:?}"
    );
    assert!(
        a.iter()
            .any(|t| t.contains("Номер привязан") && t.contains("Лотос")),
        "{a:?}"
    );
    let everything = |texts: &[String]| texts.join("\n");
    assert!(
        !everything(&a).contains("Роза") && !everything(&a).contains("Сирень"),
        "{a:?}"
    );
    let b = said_by(&tg, ROZA).await;
    assert!(
        b.iter()
            .any(|t| t.contains("Номер привязан") && t.contains("Роза")),
        "{b:?}"
    );
    assert!(
        !everything(&b).contains("Лотос") && !everything(&b).contains("Сирень"),
        "{b:?}"
    );
    let c = said_by(&tg, DEPLOYMENT).await;
    assert!(c.iter().any(|t| t.contains("Сирень")), "{c:?}");
    assert!(
        !everything(&c).contains("Лотос") && !everything(&c).contains("Роза"),
        "{c:?}"
    );

    // «Роза»'s bot answers 429 once: its next message waits; the others' do not.
    Mock::given(method("POST"))
        .and(path(format!("/bot{ROZA}/sendMessage")))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "ok": false, "error_code": 429, "description": "Too Many Requests: retry after 5",
            "parameters": {"retry_after": 5}})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&tg)
        .await;
    // A visit at each: each is told by her salon's bot.
    let visits_at = std::time::Instant::now();
    for p in [roza, lotos, siren] {
        env.cli(&[
            "visit",
            "add",
            "--partner",
            &p.to_string(),
            "--phone",
            PHONE,
            "--paid-minor",
            "300000",
        ]);
    }
    // How many times a bot was asked to tell of the visit (wiremock records the 429'd too).
    let told = |token: &'static str, salon: &'static str| {
        let tg = &tg;
        async move {
            said_by(tg, token)
                .await
                .iter()
                .filter(|t| t.contains("+150") && t.contains(salon))
                .count()
        }
    };
    wait_for("Лотос's bot tells of the visit", async || {
        told(LOTOS, "Лотос").await == 1
    })
    .await;
    wait_for("the deployment's bot tells of Сирень's", async || {
        told(DEPLOYMENT, "Сирень").await == 1
    })
    .await;
    // «Роза»'s was asked first and refused; its second try waits out the 5 s pause, while the
    // other bots' went out at once (a pause of the whole worker would have held them 5 s).
    assert!(
        visits_at.elapsed() < Duration::from_secs(4),
        "the other bots were held: {:?}",
        visits_at.elapsed()
    );
    assert_eq!(told(ROZA, "Роза").await, 1, "Роза's bot waits out its 429");
    wait_for(
        "Роза's bot tells of the visit after its pause",
        async || told(ROZA, "Роза").await == 2,
    )
    .await;
    for (token, others) in [
        (LOTOS, ["Роза", "Сирень"]),
        (ROZA, ["Лотос", "Сирень"]),
        (DEPLOYMENT, ["Лотос", "Роза"]),
    ] {
        let all = everything(&said_by(&tg, token).await);
        assert!(!others.iter().any(|o| all.contains(o)), "{token}: {all}");
    }

    // Exchange through each bot: a 100-point certificate of each salon.
    let mut rewards = Vec::new();
    for p in [lotos, roza, siren] {
        let r = cli::reward_add(
            store,
            &RewardAdd {
                partner: p,
                title: "Сертификат 500 ₽".into(),
                points: 100,
                certificate_minor: Some(50_000),
                service_id: None,
                price_minor: None,
            },
            0,
        )
        .await
        .unwrap();
        rewards.push(r["id"].as_i64().unwrap());
    }
    // Through «Лотос»'s bot, «Роза»'s reward is not hers to take there.
    let foreign = format!("y:{roza}:{}", rewards[1]);
    assert!(post(gateway.addr, &secret_a, &secret_a, &button(20, &foreign)).await);
    let mine = format!("y:{lotos}:{}", rewards[0]);
    assert!(post(gateway.addr, &secret_a, &secret_a, &button(21, &mine)).await);
    let theirs = format!("y:{roza}:{}", rewards[1]);
    assert!(post(gateway.addr, &secret_b, &secret_b, &button(22, &theirs)).await);
    let deployment = format!("y:{siren}:{}", rewards[2]);
    assert!(post(gateway.addr, "s3cret", "s3cret", &button(23, &deployment)).await);
    let a = said_by(&tg, LOTOS).await;
    assert!(a.iter().any(|t| t.contains("больше недоступна")), "{a:?}");
    for (p, n) in [(lotos, 1), (roza, 1), (siren, 1)] {
        let client = loyalty_core::ClientStore::client_by_phone(
            store.as_ref(),
            PartnerId(p),
            &loyalty_core::Phone::parse_international(PHONE).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
        let codes = store.redemptions_of(PartnerId(p), client.id).await.unwrap();
        assert_eq!(codes.len(), n, "partner {p}");
        let code = codes[0].code.to_string();
        let token = match p {
            x if x == lotos => LOTOS,
            x if x == roza => ROZA,
            _ => DEPLOYMENT,
        };
        let said = everything(&said_by(&tg, token).await);
        assert!(
            said.contains(&code),
            "{p}'s code through its own bot: {said}"
        );
    }

    // Taken off: «Лотос»'s clients link again through the deployment's bot.
    let removed = env.cli(&["bot", "remove", "--partner", &lotos.to_string()]);
    assert_eq!(removed["removed"], "lotos_bot");
    assert!(env.cli(&["bot", "list"])["bots"].as_array().unwrap().len() == 1);
    gateway.stop().await.unwrap();
    schema.drop().await;
}
