//! Russian by default, English by the browser's `Accept-Language` or the switch (cookie
//! `lb_lang`). Every word a page shows is a field of [`Words`], so a template that names a
//! missing one does not compile.

use axum::http::HeaderMap;
use axum::http::header::{ACCEPT_LANGUAGE, COOKIE};
use loyalty_core::access::Role;
use loyalty_core::audit::Plan;
use loyalty_core::ledger::EntryKind;
use loyalty_core::redemption::RedemptionStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ru,
    En,
}

/// The cookie the language switch sets.
pub const LANG_COOKIE: &str = "lb_lang";

impl Lang {
    /// The switch's choice, else the first of Russian or English the browser lists (by its
    /// weights), else Russian.
    pub fn of(headers: &HeaderMap) -> Lang {
        if let Some(chosen) = cookie(headers, LANG_COOKIE).and_then(|v| Lang::parse(&v)) {
            return chosen;
        }
        let Some(accept) = headers.get(ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()) else {
            return Lang::Ru;
        };
        let mut best: Option<(u16, Lang)> = None;
        for part in accept.split(',') {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let weight = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .map_or(1000, |q| (q.clamp(0.0, 1.0) * 1000.0) as u16);
            let lang = match tag.split('-').next() {
                Some("ru") => Lang::Ru,
                Some("en") => Lang::En,
                _ => continue,
            };
            if weight > 0 && best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, lang));
            }
        }
        best.map_or(Lang::Ru, |(_, l)| l)
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "ru" => Some(Lang::Ru),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn words(self) -> &'static Words {
        match self {
            Lang::Ru => &RU,
            Lang::En => &EN,
        }
    }

    pub fn role(self, r: Role) -> &'static str {
        let w = self.words();
        match r {
            Role::Owner => w.role_owner,
            Role::Admin => w.role_admin,
            Role::Viewer => w.role_viewer,
        }
    }

    pub fn plan(self, p: Plan) -> &'static str {
        match p {
            Plan::Basic => "Basic",
            Plan::Pro => "Pro",
            Plan::Enterprise => "Enterprise",
        }
    }

    pub fn entry(self, k: EntryKind) -> &'static str {
        let (ru, en) = match k {
            EntryKind::Accrual => ("за визит", "for a visit"),
            EntryKind::Reversal => ("возврат за визит", "a visit's points back"),
            EntryKind::ManualAccrual => ("начислено вручную", "added by hand"),
            EntryKind::ManualDebit => ("списано вручную", "written off by hand"),
            EntryKind::Welcome => ("приветственные", "welcome bonus"),
            EntryKind::Birthday => ("ко дню рождения", "birthday"),
            EntryKind::Referral => ("за друга", "referral"),
            EntryKind::Offer => ("по предложению", "offer"),
            EntryKind::Trigger => ("бонус салона", "salon's bonus"),
            EntryKind::Expiry => ("сгорели", "expired"),
            EntryKind::Matured => ("стали доступны", "became spendable"),
            EntryKind::Hold => ("на обмен", "held for a reward"),
            EntryKind::HoldPost => ("обмен завершён", "reward used"),
            EntryKind::HoldVoid => ("обмен отменён", "reward cancelled"),
        };
        match self {
            Lang::Ru => ru,
            Lang::En => en,
        }
    }

    pub fn redemption(self, s: RedemptionStatus) -> &'static str {
        let w = self.words();
        match s {
            RedemptionStatus::Issued => w.code_active,
            RedemptionStatus::Pending => w.code_pending,
            RedemptionStatus::Used => w.code_used,
            RedemptionStatus::Cancelled => w.code_cancelled,
            RedemptionStatus::Expired => w.code_expired,
            RedemptionStatus::Failed => w.code_failed,
        }
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

macro_rules! words {
    ($($field:ident: $ru:literal, $en:literal;)*) => {
        /// The words of one language.
        pub struct Words {
            $(pub $field: &'static str,)*
        }
        pub static RU: Words = Words { $($field: $ru,)* };
        pub static EN: Words = Words { $($field: $en,)* };
    };
}

words! {
    code: "ru", "en";
    other_lang: "en", "ru";
    other_lang_name: "English", "Русский";
    sign_in: "Войти", "Sign in";
    sign_out: "Выйти", "Sign out";
    email: "Эл. почта", "E-mail";
    password: "Пароль", "Password";
    bad_login: "Неверная почта или пароль.", "Wrong e-mail or password.";
    too_many: "Слишком много попыток входа. Попробуйте позже.", "Too many sign-in attempts. Try again later.";
    nav_home: "Обзор", "Overview";
    nav_clients: "Клиенты", "Clients";
    nav_desk: "Касса", "Desk";
    nav_team: "Сотрудники", "Team";
    nav_program: "Программа", "Program";
    nav_rewards: "Награды", "Rewards";
    no_rewards: "Наград пока нет: клиентам не на что потратить баллы.", "No rewards yet: clients have nothing to spend points on.";
    add_certificate: "Добавить сертификат", "Add a certificate";
    add_service: "Добавить услугу из CRM", "Add a service from the CRM";
    nav_analytics: "Аналитика", "Analytics";
    as_of: "Данные на", "Figures as of";
    refresh: "Обновить", "Refresh";
    nav_health: "Интеграция", "Integration";
    no_connections: "CRM ещё не подключена.", "No CRM is connected yet.";
    last_webhook: "Последний вебхук", "Last webhook";
    last_pass: "Последняя сверка", "Last reconciliation";
    poll_lag: "Отставание сверки", "Reconciliation lag";
    pass_counts: "Прочитано / применено / в очереди / ошибок", "Read / applied / queued / errors";
    last_error: "Последняя ошибка", "Last error";
    history_import: "Загрузка истории", "History import";
    import_clients: "клиенты", "clients";
    import_records: "визиты", "visits";
    import_done: "готово", "done";
    import_clients_word: "клиентов", "clients";
    import_records_word: "визитов", "visits";
    incident: "Проблема", "Incident";
    rejected: "Отклонённые вебхуки", "Refused webhooks";
    none_rejected: "Отклонённых нет.", "None refused.";
    connection: "Подключение", "Connection";
    a_points: "Баллы", "Points";
    issued: "Начислено", "Issued";
    spent: "Потрачено", "Spent";
    expired: "Сгорело", "Expired";
    pending_held: "Ожидают / на обмене", "Pending / held";
    liability: "Обязательства в деньгах", "Liability in money";
    redemption_rate: "Доля потраченных", "Redemption rate";
    points_by_month: "Баллы по месяцам", "Points by month";
    month: "Месяц", "Month";
    a_linked: "Клиенты в Telegram и без", "Clients in Telegram and without";
    association: "Это сравнение, а не доказательство: в бот приходят и так более верные клиенты. Причинный эффект — в сравнении с контрольной группой ниже.", "This is an association, not proof: the more loyal clients are the ones who join the bot. The causal effect is the control-group comparison below.";
    linked_group: "в Telegram", "in Telegram";
    not_linked_group: "без Telegram", "without Telegram";
    group: "Группа", "Group";
    clients_year: "Клиентов за год", "Clients in the year";
    return_60: "Вернулись за 60 дней", "Came back within 60 days";
    return_90: "Вернулись за 90 дней", "Came back within 90 days";
    return_rates: "Возвращаемость", "Return rates";
    visits_per_year: "Визитов в год", "Visits per year";
    average_check: "Средний чек", "Average bill";
    a_cohorts: "Удержание по месяцу первого визита", "Retention by the month of the first visit";
    a_cohorts_note: "Какая доля клиентов, впервые пришедших в этом месяце, приходила в каждый следующий (+0 — сам месяц).", "The share of the clients who first came in that month who came in each month after (+0 is the month itself).";
    no_cohorts: "За последние 12 месяцев новых клиентов не было.", "No new clients in the last 12 months.";
    a_reminders: "Напоминания против контрольной группы", "Reminders against the control group";
    a_reminders_note: "Вернулись в течение 30 дней после решения: получившие напоминание против отложенных в контрольную группу; интервал — 95 %.", "Came back within 30 days of the decision: those sent a reminder against those held out as control; the interval is 95 %.";
    trigger: "Повод", "Trigger";
    sent_arm: "Отправлено (вернулись / всего)", "Sent (returned / all)";
    control_arm: "Контроль (вернулись / всего)", "Control (returned / all)";
    difference: "Разница", "Difference";
    interval: "Интервал 95 %", "95 % interval";
    conclusive: "доказано", "conclusive";
    no_reminders: "Напоминаний ещё не было — или они слишком свежие, чтобы судить.", "No reminders yet, or too recent to judge.";
    program_return: "Отдача", "Return";
    program_return_note: "Дополнительные визиты от напоминаний × средний чек, против стоимости потраченных за 12 месяцев баллов.", "Extra visits from reminders × the average bill, against what the points spent over 12 months were worth.";
    extra_revenue: "Выручка от напоминаний", "Revenue from reminders";
    points_spent_value: "Потрачено баллов на сумму", "Points spent, in money";
    csv: "CSV", "CSV";
    f_cashback: "Кешбэк, %", "Cashback, %";
    f_min_paid: "Минимальный чек для баллов", "Smallest bill that earns";
    f_ttl_days: "Баллы сгорают через, дней (пусто — никогда)", "Points expire after, days (empty: never)";
    f_max_share: "Баллами можно оплатить до, % чека", "Points may pay up to, % of a bill";
    f_welcome: "Приветственные баллы", "Welcome points";
    f_point_value: "Стоимость балла", "One point is worth";
    f_code_days: "Код действует, дней", "A code works for, days";
    f_pending_days: "Баллы доступны через, дней (окно возврата)", "Points spendable after, days (refund window)";
    f_max_points: "Не больше баллов за визит (пусто — без предела)", "At most points per visit (empty: no cap)";
    program_json: "Вся программа (JSON): уровни, акции, правила, день рождения, рекомендации, напоминания", "The whole program (JSON): levels, campaigns, rules, birthday, referrals, reminders";
    versions: "Версии", "Versions";
    in_force_from: "действует с", "in force from";
    saved: "Сохранено: новая версия действует с этой минуты.", "Saved: a new version is in force from now.";
    nav_audit: "Журнал", "Audit log";
    nav_api: "API", "API";
    api_intro: "Ключи партнёрского API: через них касса, CRM или ваша программа работают с программой лояльности — находят клиентов, начисляют баллы, передают визиты, выдают награды.", "Keys of the partner API: a POS, a CRM or your own software runs the loyalty program through them — finds clients, adds points, pushes visits, issues rewards.";
    api_key_shown: "Новый ключ. Сохраните его сейчас: он показывается один раз, у нас хранится только его отпечаток.", "The new key. Keep it now: it is shown once; we keep only its fingerprint.";
    api_scope: "Права", "Scope";
    api_scope_read: "только чтение", "read only";
    api_scope_write: "чтение и изменения", "read and change";
    api_add: "Создать ключ", "Make a key";
    api_revoke: "Отозвать", "Revoke";
    api_revoked: "отозван", "revoked";
    api_none: "Ключей пока нет.", "No keys yet.";
    api_reference: "Справочник API (OpenAPI)", "API reference (OpenAPI)";
    api_prefix: "Ключ начинается с", "Key starts with";
    api_endpoints: "Вебхуки партнёров", "Partners' webhooks";
    api_events: "События", "Events";
    api_endpoint_off: "отключён", "disabled";
    api_failing_since: "Доставки не проходят с", "Deliveries failing since";
    plan: "Тариф", "Plan";
    role: "Роль", "Role";
    role_owner: "владелец", "owner";
    role_admin: "администратор", "admin";
    role_viewer: "наблюдатель", "viewer";
    clients_total: "Клиентов", "Clients";
    linked: "В Telegram", "In Telegram";
    outstanding: "Баллов на счетах", "Points outstanding";
    visits_30: "Визитов за 30 дней", "Visits in 30 days";
    search_hint: "Телефон или имя", "Phone or name";
    search: "Найти", "Search";
    phone: "Телефон", "Phone";
    name: "Имя", "Name";
    balance: "Баланс", "Balance";
    level: "Уровень", "Level";
    visits: "Визиты", "Visits";
    last_visit: "Последний визит", "Last visit";
    none_found: "Никого не нашли.", "No one found.";
    next_page: "Дальше →", "Next →";
    prev_page: "← Назад", "← Back";
    pending: "Ожидают", "Pending";
    paid_total: "Сумма чеков", "Bills total";
    history: "История баллов", "Points history";
    recent_visits: "Последние визиты", "Latest visits";
    when: "Когда", "When";
    points: "Баллы", "Points";
    reason: "Причина", "Reason";
    accrue: "Начислить", "Accrue";
    debit: "Списать", "Debit";
    manual: "Начислить или списать вручную", "Accrue or debit by hand";
    reason_hint: "Клиент и журнал увидят её", "The client and the audit log see it";
    status: "Статус", "Status";
    action: "Действие", "Action";
    paid: "Оплачено", "Paid";
    services: "Услуги", "Services";
    master: "Мастер", "Master";
    came: "пришёл", "came";
    not_came: "не пришёл", "did not come";
    done: "Готово.", "Done.";
    desk_title: "Код клиента", "Client's code";
    export_csv: "Выгрузить всех в CSV", "Export all as CSV";
    desk_visit: "Визит на кассе", "A visit at the desk";
    desk_visit_hint: "Для салонов, чья CRM не сообщает о визитах: баллы по правилам программы, клиент узнает в Telegram.", "For salons whose CRM does not report visits: points by the program's rules, the client told in Telegram.";
    service: "Услуга", "Service";
    enter_visit: "Провести визит", "Enter the visit";
    cancel_visit: "Отменить визит", "Cancel the visit";
    code_hint: "Например ABCD-EFGH-K", "For example ABCD-EFGH-K";
    check: "Проверить", "Check";
    bill: "Сумма чека", "Bill";
    use_code: "Погасить код", "Use the code";
    reward: "Награда", "Reward";
    cost: "Списано баллов", "Points held";
    worth: "Номинал", "Worth";
    min_bill: "Минимальный чек", "Smallest bill";
    valid_until: "Действует до", "Valid until";
    client: "Клиент", "Client";
    code_active: "действует", "active";
    code_pending: "выдаётся в CRM", "being issued in the CRM";
    code_used: "погашен", "used";
    code_cancelled: "отменён", "cancelled";
    code_expired: "истёк", "expired";
    code_failed: "не выдан", "not issued";
    code_unknown: "Такого кода нет.", "There is no such code.";
    team_invite: "Пригласить сотрудника", "Invite a staff member";
    invite: "Пригласить", "Invite";
    remove: "Удалить", "Remove";
    invite_link: "Передайте сотруднику эту ссылку: она действует 7 дней и открывается один раз.", "Give this link to the staff member: it works for 7 days, once.";
    invited: "приглашён", "invited";
    you: "это вы", "you";
    set_password: "Задайте пароль", "Set your password";
    password_rule: "Не короче 10 символов.", "At least 10 characters.";
    save: "Сохранить", "Save";
    who: "Кто", "Who";
    what: "Что", "What";
    details: "Подробности", "Details";
    not_found: "Не найдено.", "Not found.";
    forbidden: "Вашей роли это недоступно.", "Your role cannot do this.";
    needs_plan: "Это доступно на тарифе", "This needs the plan";
    bad_input: "Проверьте данные", "Check the input";
    cross_site: "Запрос с другого сайта отклонён.", "A request from another site was refused.";
    server_error: "Что-то пошло не так; попробуйте ещё раз.", "Something went wrong; try again.";
    link_dead: "Ссылка недействительна: она уже использована или истекла.", "This link is no longer valid: it was used or has expired.";
    back: "← Назад", "← Back";
    signed_in_as: "Вы вошли как", "Signed in as";
    nav_setup: "Подключение", "Setup";
    nav_reminders: "Напоминания", "Reminders";
    a_locations: "Филиалы", "Locations";
    a_locations_note: "За последние 12 месяцев. Возврат — следующий визит в любой филиал сети; клиент, бывший в двух филиалах, в итоге считается один раз.", "Over the last 12 months. A return is a next visit at any location of the chain; a client of two locations counts once in the whole.";
    location: "Филиал", "Location";
    all_locations: "Вся сеть", "The whole chain";
    locations_chart: "Визиты по филиалам за год", "Visits by location over the year";
    visits_year: "Визитов за год", "Visits in the year";
    paid_year: "Выручка за год", "Revenue in the year";
    points_year: "Баллов начислено", "Points earned";
    reminders_on: "Напоминания и предложения включены.", "Reminders and offers are on.";
    reminders_off: "Напоминания выключены: клиентам не уходит ни одного рекламного сообщения.", "Reminders are off: no marketing message goes to clients.";
    last_scan: "Последний просмотр клиентов (клиентов / решений записано)", "Last scan (clients / decisions recorded)";
    reminders_settings: "Настройки", "Settings";
    reminders_switch: "Напоминать клиентам и делать предложения", "Remind clients and make offers";
    send_from: "Отправлять с, час", "Send from, hour";
    send_to: "до, час", "until, hour";
    cap_7: "Не больше за 7 дней", "At most per 7 days";
    cap_30: "Не больше за 30 дней", "At most per 30 days";
    holdout: "Контрольная группа, %", "Control group, %";
    booking_url: "Страница онлайн-записи", "Online booking page";
    triggers_json: "Поводы (JSON: kind, тексты, предложения)", "Triggers (JSON: kind, texts, offers)";
    preview_now: "Кому и что ушло бы сейчас", "Preview: who would get what now";
    nobody_due: "Сейчас никому ничего не пора.", "Nobody is due now.";
    decision: "Решение", "Decision";
    why_word: "Почему", "Why";
    opted_in: "согласились получать", "opted in";
    sent_title: "Что отправлено", "What was sent";
    no_sends: "Пока ничего.", "Nothing yet.";
    channel: "Канал", "Channel";
    results_title: "Результат против контрольной группы", "Results against the control group";
    a_values: "Ценность клиентов", "Client value";
    a_values_note: "Ожидаемая выручка от каждого клиента за 12 месяцев по модели оттока (BG/NBD и Gamma-Gamma) и клиенты, которые скорее ушли, чем нет, — по тому, сколько стоит их потерять.", "Each client's expected revenue over 12 months under the churn model (BG/NBD and Gamma-Gamma), and the clients likelier gone than not, by what losing them costs.";
    model_fitted: "Модель построена", "Model fitted";
    values_total: "ожидаемая выручка", "expected revenue";
    values_chart: "Клиенты по ценности за 12 месяцев", "Clients by 12-month value";
    value_12m: "Ценность за 12 месяцев", "12-month value";
    at_risk_title: "Под угрозой ухода", "Most at risk";
    no_at_risk: "Таких клиентов нет.", "No client is at risk.";
    p_alive: "Вероятность, что ещё клиент", "Chance still a client";
    at_stake: "Сколько стоит потеря", "What losing her costs";
    days_away: "Дней без визитов", "Days away";
    no_model: "Модель ещё не построена: она строится для напоминаний «под угрозой ухода» или здесь.", "No model yet: it is built for the at-risk reminders, or here.";
    build_model: "Построить модель", "Build the model";
    signup_title: "Новый салон", "A new salon";
    salon_name: "Название салона", "The salon's name";
    create_salon: "Создать салон", "Create the salon";
    email_taken: "С этой почтой уже входят в салон.", "This e-mail already signs in to a salon.";
    setup_title: "Подключение CRM", "Connect your CRM";
    setup_start: "Подключите CRM, чтобы баллы начислялись сами.", "Connect your CRM so points accrue by themselves.";
    choose_crm: "Какая у вас CRM?", "Which CRM do you use?";
    company_id: "ID филиала в CRM", "The location's id in the CRM";
    company_hint: "Число из адреса CRM или из настроек филиала.", "The number in the CRM's address or the location's settings.";
    partner_token: "Партнёрский токен", "Partner token";
    user_token: "Пользовательский токен", "User token";
    crm_email: "E-mail сотрудника-интегратора", "The integrator's e-mail";
    crm_password: "Пароль сотрудника-интегратора", "The integrator's password";
    api_base: "Адрес API, если не стандартный", "The API's address, if not the default";
    app_id: "ID приложения", "Application id";
    app_secret: "Секрет приложения", "Application secret";
    connect: "Подключить", "Connect";
    connected_to: "Подключения", "Connections";
    fill_in: "Заполните поле", "Fill in";
    company_digits: "ID филиала — это число.", "The location's id is a number.";
    already_connected: "Этот филиал уже подключён.", "This location is already connected.";
    check_title: "Проверка подключения", "Connection check";
    check_connection: "Проверить подключение", "Check connection";
    step_records: "Журнал записей", "The appointment journal";
    step_clients: "База клиентов", "The client base";
    step_services: "Услуги", "Services";
    step_ok: "работает, получено", "works, listed";
    no_api: "Без доступа к API: баллы придут с вебхуков, история не загружается.", "No API access: points come with webhooks, no history is imported.";
    crm_auth: "CRM не приняла данные входа: проверьте токен или пароль.", "The CRM refused the credentials: check the token or password.";
    crm_forbidden: "Нет права или лицензии: выдайте пользователю доступ к API в CRM.", "A right or the licence is missing: give the user API access in the CRM.";
    crm_not_found: "CRM не знает такого филиала или адреса.", "The CRM knows no such location or address.";
    crm_rate: "CRM просит подождать (лимит запросов): проверьте через минуту.", "The CRM asks to wait (rate limit): check again in a minute.";
    crm_down: "CRM сейчас не отвечает: проверьте позже.", "The CRM does not answer now: check later.";
    crm_odd: "CRM ответила неожиданно:", "The CRM answered unexpectedly:";
    crm_cannot: "Эта CRM так не умеет.", "This CRM cannot do this.";
    webhook_title: "Вебхук", "Webhook";
    webhook_register: "Подписать вебхук через API CRM", "Subscribe the webhook through the CRM's API";
    webhook_registered: "Вебхук подписан на:", "The webhook is subscribed to:";
    webhook_paste: "Вставьте этот адрес в настройках вебхуков CRM:", "Paste this address in the CRM's webhook settings:";
    webhook_none: "DIKIDI не отправляет вебхуки: визиты загружаются файлом выгрузки или вводятся на кассе.", "DIKIDI sends no webhooks: visits come from its export files or are entered at the desk.";
    delivery_waiting: "Ждём первую доставку: измените или закройте любую запись в CRM.", "Waiting for the first delivery: change or close any record in the CRM.";
    delivery_arrived: "Доставка получена", "A delivery arrived";
    connection_green: "Подключение работает", "The connection works";
    connection_grey: "Подключение ещё не подтверждено", "The connection is not confirmed yet";
    import_title: "Загрузка истории", "History import";
    import_none: "Нет доступа к API: историю можно загрузить файлом.", "No API access: the history can be imported from a file.";
    import_failed_word: "ошибок", "errors";
    program_start: "Начальные настройки программы", "The program's first settings";
    program_change: "Изменить программу", "Change the program";
    first_cashback: "Кешбэк", "Cashback";
    first_ttl: "Баллы сгорают через, дней", "Points expire after, days";
    join_title: "Ссылка для клиентов", "The clients' link";
    join_hint: "Разместите QR-код на стойке: клиент откроет бот и присоединится.", "Put the QR code at the desk: a client opens the bot and joins.";
    no_bot: "Бот не настроен: ссылка появится, когда оператор задаст токен бота.", "No bot is configured: the link appears once the operator sets its token.";
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(accept: Option<&str>, cookie: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = accept {
            h.insert(ACCEPT_LANGUAGE, HeaderValue::from_str(a).unwrap());
        }
        if let Some(c) = cookie {
            h.insert(COOKIE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    #[test]
    fn the_browser_and_the_switch_choose_the_language() {
        assert_eq!(Lang::of(&headers(None, None)), Lang::Ru);
        assert_eq!(Lang::of(&headers(Some("en-US,en;q=0.9"), None)), Lang::En);
        assert_eq!(Lang::of(&headers(Some("de-DE,de;q=0.9"), None)), Lang::Ru);
        assert_eq!(
            Lang::of(&headers(Some("de,en;q=0.5,ru;q=0.8"), None)),
            Lang::Ru
        );
        assert_eq!(
            Lang::of(&headers(Some("ru;q=0.2,en;q=0.7"), None)),
            Lang::En
        );
        assert_eq!(
            Lang::of(&headers(Some("en"), Some("a=1; lb_lang=ru"))),
            Lang::Ru
        );
        assert_eq!(Lang::of(&headers(Some("en;q=garbage"), None)), Lang::En);
    }
}
